#!/usr/bin/perl

# Backend login and relay: SMTP EHLO/HELO + XCLIENT variants (xclient on
# and off, xtext LOGIN, ADDR/NAME, client HELO), MAIL/RCPT replay for
# smtp_auth none, proxy_smtp_auth; IMAP untagged lines before the tagged
# OK; proxy_pass_error_message on and off; a backend refusing the
# connection; proxy_timeout; half-close; and the log lines.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Socket qw(SHUT_WR);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail/)->plan(39);
my $dir = $t->testdir;

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    server_name example.test;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol smtp;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol smtp;
        xclient off;
        proxy_smtp_auth on;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol smtp;
        smtp_auth none;
    }
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol imap;
        proxy_pass_error_message on;
    }
    server {
        listen 127.0.0.1:%%PORT_4%%;
        protocol imap;
        proxy_timeout 1s;
    }
    server {
        listen 127.0.0.1:%%PORT_5%%;
        protocol pop3;
        proxy_pass_error_message on;
    }
}
EOF

my %backend = (smtp => $t->port(11), imap => $t->port(12), pop3 => $t->port(13));
my $closed_port = $t->port(19);    # reserved, nothing listens there
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	"$dir/auth.log", sub {
		my ($h) = @_;
		my $port = ($h->{'auth-user'} // '') eq 'refused'
			? $closed_port : $backend{$h->{'auth-protocol'}};
		return Test::Postern::Daemons::auth_ok($port);
	});
for my $p (keys %backend) {
	$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend{$p}, $p,
		"$dir/$p.log");
}
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), values %backend;
$t->run();

# what a backend received on its last connection
sub backend_session {
	my ($p, $until) = @_;
	my $log;
	wait_until(sub {
		$log = $t->read_file("$p.log");
		$log =~ s/.*connect\n//s;
		return $log =~ $until;
	}, 5);
	return $log;
}
sub error_log_like {
	my ($re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until(sub { $t->read_file('error.log') =~ $re }, 5), $name)
		or diag($t->read_file('error.log'));
}
my $xtext_login = Test::Postern::Mail::nginx_older_than('1.29.2')
	# nginx before 1.29.2 sent the login raw (not xtext)
	? 'we ird+x=' : 'we+20ird+2Bx+3D';

# --- SMTP ------------------------------------------------------------------------

my $s = Test::Postern::SMTP->new(port => $t->port(0));
$s->read;
$s->send('EHLO client.test');
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0we ird+x=\0pw", ''));
$s->expect("235 2.0.0 OK\r\n", 'xclient: 235 to the client');
$s->send('ECHO relayed');
$s->expect("relayed\r\n", 'xclient: relayed');
is(backend_session('smtp', qr/ECHO/),
	"<< EHLO example.test\n"
	. "<< XCLIENT ADDR=127.0.0.1 LOGIN=$xtext_login NAME=[UNAVAILABLE]\n"
	. "<< EHLO client.test\n<< ECHO relayed\n",
	'xclient: EHLO server_name, XCLIENT with xtext LOGIN, client EHLO');
$s->close;

$s = Test::Postern::SMTP->new(port => $t->port(0));
$s->read;
$s->send('HELO old.client');
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0bob\0pw", ''));
$s->expect("235 2.0.0 OK\r\n", 'xclient with HELO: 235');
$s->send('ECHO x');
$s->read;
is(backend_session('smtp', qr/ECHO/),
	"<< EHLO example.test\n"
	. "<< XCLIENT ADDR=127.0.0.1 LOGIN=bob NAME=[UNAVAILABLE]\n"
	. "<< HELO old.client\n<< ECHO x\n",
	'xclient: the client HELO replayed as HELO');
$s->close;

$s = Test::Postern::SMTP->new(port => $t->port(0));
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0carol\0pw", ''));
$s->expect("235 2.0.0 OK\r\n", 'xclient without client HELO: 235');
$s->send('ECHO y');
$s->read;
is(backend_session('smtp', qr/ECHO/),
	"<< EHLO example.test\n"
	. "<< XCLIENT ADDR=127.0.0.1 LOGIN=carol NAME=[UNAVAILABLE]\n"
	. "<< ECHO y\n",
	'xclient: nothing replayed without a client HELO');
$s->close;

# xclient off, proxy_smtp_auth on
$s = Test::Postern::SMTP->new(port => $t->port(1));
$s->read;
$s->send('AUTH PLAIN ' . encode_base64("\0dave\0pw", ''));
$s->expect("235 2.0.0 OK\r\n", 'proxy_smtp_auth: 235');
$s->send('ECHO z');
$s->read;
is(backend_session('smtp', qr/ECHO/),
	"<< HELO example.test\n"
	. "<< AUTH PLAIN " . encode_base64("\0dave\0pw", '') . "\n"
	. "<< ECHO z\n",
	'proxy_smtp_auth: HELO then AUTH PLAIN to the backend');
$s->close;

$s = Test::Postern::SMTP->new(port => $t->port(1));
$s->read;
$s->send('EHLO client.test');
$s->read;
$s->send('AUTH LOGIN ' . encode_base64('reject', ''));
$s->read;
$s->send(encode_base64('pw', ''));
$s->expect("451 4.3.2 Internal server error\r\n", 'backend refuses AUTH: internal error');
$s->closed('backend refuses AUTH: closed');
error_log_like(qr/\[error\] .*upstream sent invalid response: "535 5\.7\.8 backend says no" while reading response from upstream, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "reject", upstream: 127\.0\.0\.1:$backend{smtp}$/m,
	'backend AUTH failure logged');

# smtp_auth none with xclient: XCLIENT without LOGIN, then MAIL and RCPT
$s = Test::Postern::SMTP->new(port => $t->port(2));
$s->read;
$s->send('EHLO client.test');
$s->read;
$s->send('MAIL FROM:<a@example.test>');
$s->expect("250 2.0.0 OK\r\n", 'smtp_auth none: mail');
$s->send('RCPT TO:<b@example.test>');
$s->expect("250 2.1.5 recipient ok\r\n", 'smtp_auth none: rcpt from the backend');
$s->send('ECHO w');
$s->read;
is(backend_session('smtp', qr/ECHO/),
	"<< EHLO example.test\n"
	. "<< XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]\n"
	. "<< EHLO client.test\n"
	. "<< MAIL FROM:<a\@example.test>\n<< RCPT TO:<b\@example.test>\n<< ECHO w\n",
	'smtp_auth none: XCLIENT, client EHLO, MAIL and RCPT replayed');
$s->close;
if (Test::Postern::Mail::nginx_older_than('1.29.1')) {
	# nginx before 1.29.1 did not log the upstream without a login
	error_log_like(qr/client logged in, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m,
		'smtp_auth none: logged in (old nginx: no upstream)');
} else {
	error_log_like(qr/client logged in, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, upstream: 127\.0\.0\.1:$backend{smtp}$/m,
		'smtp_auth none: logged in with the upstream, without login');
}

$s = Test::Postern::SMTP->new(port => $t->port(2));
$s->read;
$s->send('MAIL FROM:<reject@example.test>');
$s->read;
$s->send('RCPT TO:<b@example.test>');
$s->expect("451 4.3.2 Internal server error\r\n", 'backend rejects MAIL: internal error');
$s->closed('backend rejects MAIL: closed');

# --- IMAP ------------------------------------------------------------------------

$s = Test::Postern::IMAP->new(port => $t->port(4));
$s->read;
$s->send('u1 LOGIN untagged pw');
if (Test::Postern::Mail::nginx_older_than('1.27.3')) {
	# nginx before 1.27.3 failed on an untagged line after LOGIN
	$s->expect("* BAD internal server error\r\n", 'untagged before OK (old nginx)');
	$s->closed('untagged before OK: closed (old nginx)');
} else {
	$s->expect("* CAPABILITY IMAP4rev1 BACKEND\r\nu1 OK backend welcome\r\n",
		'untagged line and tagged OK passed to the client');
	$s->send('u2 ECHO after');
	$s->expect("u2 after\r\n", 'relayed after an untagged line');
}
$s->close;

$s = Test::Postern::IMAP->new(port => $t->port(3));
$s->read;
$s->send('r1 LOGIN reject pw');
$s->expect("r1 NO [AUTHENTICATIONFAILED] backend says no\r\n",
	'proxy_pass_error_message on: the backend error');
$s->closed('closed after the backend error');
error_log_like(qr/\[info\] .*upstream sent invalid response: "NO \[AUTHENTICATIONFAILED\] backend says no" while reading response from upstream, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "reject", upstream: 127\.0\.0\.1:$backend{imap}$/m,
	'passed backend error logged at info');

$s = Test::Postern::IMAP->new(port => $t->port(4));
$s->read;
$s->send('r2 LOGIN reject pw');
$s->expect("* BAD internal server error\r\n", 'proxy_pass_error_message off: internal error');
$s->closed('closed');
error_log_like(qr/\[error\] .*upstream sent invalid response: "NO \[AUTHENTICATIONFAILED\] backend says no" while reading response from upstream/m,
	'backend error logged at error');

# proxy_timeout 1s
$s = Test::Postern::IMAP->new(port => $t->port(4));
$s->read;
$s->send('t1 LOGIN idle pw');
$s->expect("t1 OK backend welcome\r\n", 'logged in');
my $start = time;
$s->{timeout} = 5;
$s->closed('proxy_timeout closes an idle session');
cmp_ok(time - $start, '<', 3, 'after about proxy_timeout');
error_log_like(qr/\[info\] .*(?:client|upstream) timed out \(110: Connection timed out\) while proxying(?: and reading from client)?, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "idle", upstream: 127\.0\.0\.1:$backend{imap}$/m,
	'proxy_timeout logged');

# --- POP3 ------------------------------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(5));
$s->read;
$s->write("USER reject\r\nPASS pw\r\n");
$s->expect("+OK\r\n-ERR [AUTH] backend says no\r\n", 'pop3 backend error passed');
$s->closed('pop3: closed after the backend error');

$s = Test::Postern::POP3->new(port => $t->port(5));
$s->read;
$s->write("USER refused\r\nPASS pw\r\n");
$s->expect("+OK\r\n-ERR internal server error\r\n", 'backend refusing the connection');
$s->closed('closed');
# the connect is non-blocking: the refusal shows when reading the greeting
error_log_like(qr/\[error\] .*\(111: Connection refused\) while (?:connecting to|reading response from) upstream, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "refused", upstream: 127\.0\.0\.1:$closed_port$/m,
	'refused connection logged');

# half-close by the client: what it sent still reaches the backend, then
# the session ends at once (the backend's late reply is not waited for).
# The backend may answer the NOOP before the proxy sees the client's FIN;
# that reply is then relayed first (nginx does the same), so it may or may
# not precede the close.
$s = Test::Postern::POP3->new(port => $t->port(5));
$s->read;
$s->write("USER half\r\nPASS pw\r\n");
$s->read;
$s->read;
$s->write("NOOP\r\n");
$s->socket->shutdown(SHUT_WR);
my $late = $s->getline;
$late = $s->getline if defined $late && $late =~ /^\+OK/;
ok(!defined $late && $s->socket->eof, 'half-close ends the session')
	|| diag('got ' . ($late // '(timeout)'));
is(backend_session('pop3', qr/eof/), "<< USER half\n<< PASS pw\n<< NOOP\neof\n",
	'the backend got everything, then EOF');
error_log_like(qr/\[info\] .*proxied session done, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "half", upstream: 127\.0\.0\.1:$backend{pop3}$/m,
	'proxied session done logged');

# --- log lines -------------------------------------------------------------------

error_log_like(qr/\[info\] \d+#\d+: \*\d+ client 127\.0\.0\.1:\d+ connected to 127\.0\.0\.1:${\ $t->port(5)}$/m,
	'connection logged as "client … connected to …"');

$t->stop();
