#!/usr/bin/perl

# The auth_http client: every request header (method, user, password,
# protocol, login attempt, client address, salt, SMTP fields,
# auth_http_header, escaping) as the daemon records it, and every response
# case: OK with server and port, Auth-User/Auth-Pass overrides, error text
# per protocol, Auth-Error-Code, Auth-Wait with a retry, WAIT, malformed
# responses, a server name, a missing or bad port, a slow and a closed
# auth server (internal server error replies and error log lines), and
# auth_http over a UNIX-domain socket.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail unix/)->plan(57);
my $dir = $t->testdir;

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http http://127.0.0.1:%%PORT_10%%/auth?x=1;
    auth_http_timeout 1s;
    auth_http_header X-Auth-Key "s3cret";
    auth_http_header X-Second two;
    server_name example.test;
    xclient off;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol smtp;
    }
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol pop3;
        auth_http unix:%%TESTDIR%%/auth.sock:/unix/auth;
    }
}
EOF

my %backend = (pop3 => $t->port(11), imap => $t->port(12), smtp => $t->port(13));
my $auth_port = $t->port(10);
my %seen;
my $respond = sub {
	my ($h) = @_;
	my $user = $h->{'auth-user'} // '';
	my $port = $backend{$h->{'auth-protocol'} // ''} // 1;
	my $ok = sub { Test::Postern::Daemons::auth_ok($port, @_) };
	my $fail = \&Test::Postern::Daemons::auth_fail;
	return $fail->('Invalid login or password') if $user eq 'err';
	return $fail->('Temporary failure', 'Auth-Error-Code: 451 4.3.0')
		if $user eq 'code';
	return $fail->('Try again', 'Auth-Wait: 1') if $user eq 'wait';
	if ($user eq 'waitstatus') {
		return $fail->('WAIT', 'Auth-Wait: 1') if !$seen{$user}++;
		return $ok->();
	}
	return $ok->('Auth-User: newuser', 'Auth-Pass: newpass') if $user eq 'over';
	return "HTTP/1.0 200 OK\r\nAuth-Status OK\r\n\r\n" if $user eq 'malformed';
	return "garbage\r\n\r\n" if $user eq 'nostatus';
	return "HTTP/1.0 200 OK\rbroken\r\n\r\n" if $user eq 'badstatus';
	return "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: backend.example\r\n"
		. "Auth-Port: $port\r\n\r\n" if $user eq 'name';
	return "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n\r\n"
		if $user eq 'noport';
	return "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
		. "Auth-Port: 70000\r\n\r\n" if $user eq 'badport';
	return sub { sleep 3 } if $user eq 'slow';
	return undef if $user eq 'close';
	return $ok->();
};
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $auth_port,
	"$dir/auth.log", $respond);
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted,
	"unix:$dir/auth.sock", "$dir/auth-unix.log", $respond);
for my $p (qw/pop3 imap smtp/) {
	$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend{$p}, $p,
		"$dir/backend-$p.log");
}
$t->waitforsocket("127.0.0.1:$_") for $auth_port, values %backend;
$t->waitforfile("$dir/auth.sock");
$t->run();

my $requests = 0;
sub next_request {
	my ($file) = @_;
	$file //= "$dir/auth.log";
	my @r;
	$requests++ if $file eq "$dir/auth.log";
	my $n = $file eq "$dir/auth.log" ? $requests : 1;
	wait_until(sub { @r = Test::Postern::Daemons::auth_requests($file); @r >= $n }, 5);
	return $r[$n - 1] // { raw => '', h => {} };
}
sub error_log_like {
	my ($re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until(sub { $t->read_file('error.log') =~ $re }, 5), $name)
		or diag($t->read_file('error.log'));
}

sub pop3_login {
	my ($user, $pass, $port) = @_;
	my $s = Test::Postern::POP3->new(port => $port // $t->port(0));
	$s->read;
	$s->send("USER $user");
	$s->read;
	$s->send('PASS ' . ($pass // 'secret'));
	return $s;
}

# --- the request -----------------------------------------------------------

my $s = pop3_login('alice', 'secret');
$s->expect("+OK backend welcome\r\n", 'OK: logged in to Auth-Server:Auth-Port');
my $r = next_request();
is($r->{raw}, "GET /auth?x=1 HTTP/1.0\r\n"
	. "Host: 127.0.0.1\r\n"
	. "Auth-Method: plain\r\n"
	. "Auth-User: alice\r\n"
	. "Auth-Pass: secret\r\n"
	. "Auth-Protocol: pop3\r\n"
	. "Auth-Login-Attempt: 1\r\n"
	. "Client-IP: 127.0.0.1\r\n"
	. "X-Auth-Key: s3cret\r\n"
	. "X-Second: two\r\n"
	. "\r\n", 'request: URI with arguments, headers in order, auth_http_header');
$s->close;

# escaping: space, percent and control characters as %XX
$s = Test::Postern::IMAP->new(port => $t->port(1));
$s->read;
$s->send(qq{e1 LOGIN "a b%c\td+\x7f\xc3\xa9" "p w%"});
$s->expect("e1 OK backend welcome\r\n", 'escaping: logged in');
$r = next_request();
is($r->{h}{'auth-user'}, "a%20b%25c%09d+\x7f\xc3\xa9", 'Auth-User escaped');
is($r->{h}{'auth-pass'}, 'p%20w%25', 'Auth-Pass escaped');
like($t->read_file('backend-imap.log'), qr/^<< e1 LOGIN \{11\}\r\na b%c\td\+\x7f\xc3\xa9 \{4\}\r\np w%$/m,
	'the backend gets the values unescaped');
$s->close;

# Auth-User and Auth-Pass from the response replace the client's
$s = pop3_login('over', 'secret');
$s->expect("+OK backend welcome\r\n", 'overrides: logged in');
next_request();
like($t->read_file('backend-pop3.log'), qr/^<< USER newuser\n<< PASS newpass$/m,
	'Auth-User/Auth-Pass sent to the backend');
$s->close;
error_log_like(qr/client logged in, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "newuser", upstream: 127\.0\.0\.1:$backend{pop3}$/m,
	'the log shows the login from auth_http');

# --- errors per protocol -----------------------------------------------------

$s = pop3_login('err');
$s->expect("-ERR Invalid login or password\r\n", 'pop3 error text');
$s->closed('pop3: closed without Auth-Wait');
next_request();
error_log_like(qr/client login failed: "Invalid login or password" while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "err"$/m,
	'login failure logged');

$s = Test::Postern::IMAP->new(port => $t->port(1));
$s->read;
$s->send('i1 LOGIN err x');
$s->expect("i1 NO Invalid login or password\r\n", 'imap error text with the tag');
$s->closed('imap: closed without Auth-Wait');
next_request();

$s = Test::Postern::SMTP->new(port => $t->port(2));
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0err\0x", ''));
$s->expect("535 5.7.0 Invalid login or password\r\n", 'smtp error: 535 5.7.0 by default');
$s->closed('smtp: closed without Auth-Wait');
next_request();

$s = Test::Postern::SMTP->new(port => $t->port(2));
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0code\0x", ''));
$s->expect("451 4.3.0 Temporary failure\r\n", 'smtp error: Auth-Error-Code');
$s->closed('smtp: closed');
next_request();

# Auth-Wait: the error after a delay, then the client may try again
$s = pop3_login('wait');
my $start = time;
$s->expect("-ERR Try again\r\n", 'Auth-Wait: error text');
cmp_ok(time - $start, '>=', 1, 'Auth-Wait: after the delay');
is(next_request()->{h}{'auth-login-attempt'}, 1, 'first attempt');
$s->send('USER alice');
$s->expect("+OK\r\n", 'Auth-Wait: the session goes on');
$s->send('PASS secret');
$s->expect("+OK backend welcome\r\n", 'second attempt logged in');
$r = next_request();
is($r->{h}{'auth-login-attempt'}, 2, 'Auth-Login-Attempt: 2');
is($r->{h}{'auth-user'}, 'alice', 'second attempt user');
$s->close;

$s = Test::Postern::IMAP->new(port => $t->port(1));
$s->read;
$s->send('w1 LOGIN wait x');
$s->expect("w1 NO Try again\r\n", 'imap Auth-Wait: NO');
$s->send('w2 NOOP');
$s->expect("w2 OK completed\r\n", 'imap Auth-Wait: session goes on');
$s->close;
next_request();

# Auth-Status: WAIT asks again after Auth-Wait seconds
$s = pop3_login('waitstatus');
$s->expect("+OK backend welcome\r\n", 'WAIT: asked again, then logged in');
my $first = next_request();
my $second = next_request();
is($first->{h}{'auth-user'} . '/' . $second->{h}{'auth-user'},
	'waitstatus/waitstatus', 'WAIT: two requests');
is($second->{h}{'auth-login-attempt'}, 1, 'WAIT: the same login attempt');
$s->close;

# --- broken auth servers ---------------------------------------------------------

$s = pop3_login('malformed');
$s->expect("-ERR internal server error\r\n", 'malformed header: internal error');
$s->closed('malformed header: closed');
next_request();
error_log_like(qr/\[error\] .*auth http server 127\.0\.0\.1:$auth_port sent invalid header in response while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "malformed"$/m,
	'malformed header logged');

# a response without an HTTP status line is read as headers only
$s = pop3_login('nostatus');
$s->expect("-ERR internal server error\r\n", 'no status line: internal error');
$s->closed('no status line: closed');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port did not send server or port while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "nostatus"$/m,
	'no status line: no server or port logged');

$s = pop3_login('badstatus');
$s->expect("-ERR internal server error\r\n", 'broken status line: internal error');
$s->closed('broken status line: closed');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port sent invalid response while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "badstatus"$/m,
	'broken status line logged');

$s = pop3_login('name');
$s->expect("-ERR internal server error\r\n", 'server name: internal error');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port sent invalid server address:"backend\.example" while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "name"$/m,
	'server name logged');

$s = pop3_login('noport');
$s->expect("-ERR internal server error\r\n", 'no port: internal error');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port did not send server or port while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "noport"$/m,
	'missing port logged');

$s = pop3_login('badport');
$s->expect("-ERR internal server error\r\n", 'bad port: internal error');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port sent invalid server port:"70000" while in http auth state/m,
	'bad port logged');

$s = pop3_login('slow');
$start = time;
$s->expect("-ERR internal server error\r\n", 'slow auth server: internal error');
cmp_ok(time - $start, '<', 2.9, 'after auth_http_timeout, not the server');
$s->closed('slow: closed');
next_request();
error_log_like(qr/auth http server 127\.0\.0\.1:$auth_port timed out \(110: Connection timed out\) while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "slow"$/m,
	'auth_http_timeout logged');

$s = pop3_login('close');
$s->expect("-ERR internal server error\r\n", 'closed by the auth server: internal error');
$s->closed('close: closed');
next_request();

$s = Test::Postern::IMAP->new(port => $t->port(1));
$s->read;
$s->send('c1 LOGIN close x');
$s->expect("* BAD internal server error\r\n", 'imap internal error');
$s->closed('imap internal error closes');
next_request();

$s = Test::Postern::SMTP->new(port => $t->port(2));
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0close\0x", ''));
$s->expect("451 4.3.2 Internal server error\r\n", 'smtp internal error');
$s->closed('smtp internal error closes');
next_request();

# --- auth_http over a UNIX-domain socket -------------------------------------------

$s = pop3_login('unixuser', 'secret', $t->port(3));
$s->expect("+OK backend welcome\r\n", 'unix: logged in');
$r = next_request("$dir/auth-unix.log");
like($r->{raw}, qr{^GET /unix/auth HTTP/1\.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: unixuser\r\n},
	'unix: request line and Host: localhost');
$s->close;

$t->stop();
