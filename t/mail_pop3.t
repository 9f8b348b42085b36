#!/usr/bin/perl

# POP3 front end: every reply before login byte for byte (greeting with and
# without the APOP salt, CAPA and AUTH lists as configured, NOOP, QUIT,
# invalid commands, pipelining, max_errors, too long commands), USER/PASS,
# APOP and every AUTH method with the auth_http request it makes, and a full
# login through auth_http to a Perl backend.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::POP3;

my $t = Test::Postern->new()->has(qw/mail/)->plan(71);
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
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol pop3;
        pop3_auth plain apop cram-md5 external;
        pop3_capabilities TOP PIPELINING "RESP-CODES";
        max_errors 2;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol pop3;
        timeout 2s;
    }
}
EOF

my $backend = $t->port(11);
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	"$dir/auth.log", sub {
		my ($h) = @_;
		my $user = $h->{'auth-user'} // '';
		return Test::Postern::Daemons::auth_fail('Go away')
			if $user eq 'denied';
		my @pass = ($h->{'auth-method'} // '') =~ /^(apop|cram-md5|external)$/
			? ('Auth-Pass: secret') : ();
		return Test::Postern::Daemons::auth_ok($backend, @pass);
	});
$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend, 'pop3',
	"$dir/backend.log");
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), $backend;
$t->run();

my $requests = 0;
sub next_request {
	my @r;
	$requests++;
	wait_until(sub { @r = Test::Postern::Daemons::auth_requests("$dir/auth.log");
		@r >= $requests }, 5);
	return ($r[$requests - 1] // { h => {} })->{h};
}
sub fields {
	my ($h) = @_;
	return join ',', map { $h->{$_} // '-' } qw/auth-method auth-user auth-pass/;
}

sub connect_pop3 {
	my ($n) = @_;
	return Test::Postern::POP3->new(port => $t->port($n // 0));
}

# --- before login --------------------------------------------------------

my $s = connect_pop3();
$s->expect("+OK POP3 ready\r\n", 'greeting without salt');
$s->send('CAPA');
$s->expect("+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
	. "SASL PLAIN LOGIN\r\n.\r\n", 'capa: defaults');
$s->send('AUTH');
$s->expect("+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n", 'auth list');
$s->send('NOOP');
$s->expect("+OK\r\n", 'noop');
$s->send('noop');
$s->expect("+OK\r\n", 'lower-case command');
$s->send('FOO');
$s->expect("-ERR invalid command\r\n", 'unknown command');
$s->send('STAT');
$s->expect("-ERR invalid command\r\n", 'transaction command before login');
$s->send('PASS secret');
$s->expect("-ERR invalid command\r\n", 'PASS before USER');
$s->send('APOP user 0123456789abcdef0123456789abcdef');
$s->expect("-ERR invalid command\r\n", 'apop not enabled');
$s->send('AUTH CRAM-MD5');
$s->expect("-ERR invalid command\r\n", 'cram-md5 not enabled');
$s->close;

$s = connect_pop3();
$s->read;
$s->send('AUTH EXTERNAL');
$s->expect("-ERR invalid command\r\n", 'external not enabled');
$s->send('AUTH FOO');
$s->expect("-ERR invalid command\r\n", 'unknown mechanism');
$s->send('USER');
$s->expect("-ERR invalid command\r\n", 'USER without argument');
$s->send('QUIT');
$s->expect("+OK\r\n", 'quit');
$s->closed('closed after quit');

# pipelining
$s = connect_pop3();
$s->read;
$s->write("NOOP\r\nCAPA\r\nFOO\r\nQUIT\r\n");
$s->expect("+OK\r\n+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
	. "SASL PLAIN LOGIN\r\n.\r\n-ERR invalid command\r\n+OK\r\n",
	'pipelined commands');
$s->closed('pipelined quit closes');

# configured capabilities, methods, the salt in the greeting
$s = connect_pop3(1);
my $greeting = $s->getline // '';
like($greeting, qr/^\+OK POP3 ready <\d+\.\d+\@example\.test>\r\n\z/,
	'greeting with salt <random.time@server_name>');
my ($salt) = $greeting =~ /(<.*>)/;
$s->send('CAPA');
$s->expect("+OK Capability list follows\r\nTOP\r\nPIPELINING\r\nRESP-CODES\r\n"
	. "SASL PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n.\r\n",
	'capa: pop3_capabilities and pop3_auth (no USER)');
$s->send('AUTH');
$s->expect("+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\nEXTERNAL\r\n.\r\n",
	'auth list with all methods');

# max_errors 2
$s->send('FOO');
$s->expect("-ERR invalid command\r\n", 'first error');
$s->send('BAR');
$s->expect("-ERR invalid command\r\n", 'second error answered');
$s->closed('max_errors closes');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client sent too many invalid commands while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'max_errors logged');

# too long command: the POP3 buffer is 128 bytes
$s = connect_pop3();
$s->read;
$s->write('USER ' . ('u' x 200));
$s->expect("-ERR invalid command\r\n", 'too long command');
$s->closed('too long command closes');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client sent too long command "USER u+" while in auth state/m }, 5),
	'too long command logged');

# timeout
$s = connect_pop3(2);
$s->read;
$s->{timeout} = 6;
my $start = time;
$s->closed('timeout closes');
cmp_ok(time - $start, '<=', 5, 'closed after about the timeout');

# --- logins ----------------------------------------------------------------------

$s = connect_pop3();
$s->read;
$s->send('USER alice');
$s->expect("+OK\r\n", 'user');
$s->send('PASS se cret');
$s->expect("+OK backend welcome\r\n", 'pass: logged in');
is(fields(next_request()), 'plain,alice,se%20cret', 'user/pass: auth_http request');
like($t->read_file('backend.log'), qr/^<< USER alice\n<< PASS se cret\n/m,
	'backend got USER and PASS');
$s->send('ECHO hello');
$s->expect("hello\r\n", 'proxied');
$s->send('QUIT');
$s->expect("+OK bye\r\n", 'quit reaches the backend');
$s->closed('backend close closes the client');

# pipelined USER and PASS
$s = connect_pop3();
$s->read;
$s->write("USER bob\r\nPASS pw\r\n");
$s->expect("+OK\r\n+OK backend welcome\r\n", 'pipelined user/pass');
is(fields(next_request()), 'plain,bob,pw', 'pipelined: auth_http request');
$s->close;

# APOP
$s = connect_pop3(1);
($salt) = ($s->getline // '') =~ /(<.*>)/;
$s->send('APOP carol 0123456789abcdef0123456789abcdef');
$s->expect("+OK backend welcome\r\n", 'apop: logged in');
my $h = next_request();
is(fields($h), 'apop,carol,0123456789abcdef0123456789abcdef', 'apop: auth_http request');
is($h->{'auth-salt'}, $salt, 'apop: Auth-Salt is the greeting salt');
like($t->read_file('backend.log'), qr/^<< PASS secret$/m,
	'apop: backend gets the password from auth_http');
$s->close;

$s = connect_pop3(1);
$s->read;
$s->send('APOP carol');
$s->expect("-ERR invalid command\r\n", 'apop without digest');
$s->close;

# AUTH PLAIN
my $plain = encode_base64("\0dave\0secret", '');
$s = connect_pop3();
$s->read;
$s->send('AUTH PLAIN');
$s->expect("+ \r\n", 'plain: empty challenge');
$s->send($plain);
$s->expect("+OK backend welcome\r\n", 'plain: logged in');
is(fields(next_request()), 'plain,dave,secret', 'plain: auth_http request');
$s->close;

$s = connect_pop3();
$s->read;
$s->send("AUTH PLAIN $plain");
$s->expect("+OK backend welcome\r\n", 'plain with initial response');
is(fields(next_request()), 'plain,dave,secret', 'plain initial response: request');
$s->close;

$s = connect_pop3();
$s->read;
$s->send('AUTH PLAIN');
$s->read;
$s->send('@@@');
$s->expect("-ERR invalid command\r\n", 'plain: invalid base64');
$s->send('AUTH PLAIN ' . encode_base64('nonul', ''));
$s->expect("-ERR invalid command\r\n", 'plain: no NUL');
$s->close;

# AUTH LOGIN
$s = connect_pop3();
$s->read;
$s->send('AUTH LOGIN');
$s->expect("+ VXNlcm5hbWU6\r\n", 'login: Username:');
$s->send(encode_base64('erin', ''));
$s->expect("+ UGFzc3dvcmQ6\r\n", 'login: Password:');
$s->send(encode_base64('pw2', ''));
$s->expect("+OK backend welcome\r\n", 'login: logged in');
is(fields(next_request()), 'plain,erin,pw2', 'login: auth_http request (Auth-Method plain)');
$s->close;

$s = connect_pop3();
$s->read;
$s->send('AUTH LOGIN ' . encode_base64('erin', ''));
$s->expect("+ UGFzc3dvcmQ6\r\n", 'login with initial user');
$s->send(encode_base64('pw2', ''));
$s->expect("+OK backend welcome\r\n", 'login initial response: logged in');
is(fields(next_request()), 'plain,erin,pw2', 'login initial response: request');
$s->close;

# AUTH CRAM-MD5: the challenge is the greeting's salt
$s = connect_pop3(1);
($salt) = ($s->getline // '') =~ /(<.*>)/;
$s->send('AUTH CRAM-MD5');
$s->expect('+ ' . encode_base64($salt // '', '') . "\r\n", 'cram-md5: challenge is the salt');
$s->send(encode_base64('frank 0123456789abcdef0123456789abcdef', ''));
$s->expect("+OK backend welcome\r\n", 'cram-md5: logged in');
$h = next_request();
is(fields($h), 'cram-md5,frank,0123456789abcdef0123456789abcdef', 'cram-md5: request');
is($h->{'auth-salt'}, $salt, 'cram-md5: Auth-Salt');
$s->close;

# AUTH EXTERNAL
$s = connect_pop3(1);
$s->read;
$s->send('AUTH EXTERNAL');
$s->expect("+ VXNlcm5hbWU6\r\n", 'external: Username:');
$s->send(encode_base64('gina', ''));
$s->expect("+OK backend welcome\r\n", 'external: logged in');
is(fields(next_request()), 'external,gina,', 'external: request');
$s->close;

$s = connect_pop3(1);
$s->read;
$s->send('AUTH EXTERNAL ' . encode_base64('gina', ''));
$s->expect("+OK backend welcome\r\n", 'external with initial response');
is(fields(next_request()), 'external,gina,', 'external initial response: request');
$s->close;

# auth_http error without Auth-Wait: error text and close
$s = connect_pop3();
$s->read;
$s->send('USER denied');
$s->read;
$s->send('PASS x');
$s->expect("-ERR Go away\r\n", 'auth_http error text as -ERR');
$s->closed('closed after the error');
next_request();
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client login failed: "Go away" while in http auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "denied"$/m }, 5),
	'login failure logged');

# data both ways
$s = connect_pop3();
$s->read;
$s->write("USER big\r\nPASS big\r\n");
$s->read;
$s->read;
next_request();
$s->send('BIG 50000');
my $big = '';
$big .= ('x' x 76) . "\r\n" for 1 .. int(50000 / 76);
$big .= ('x' x (50000 % 76)) . "\r\n";
$s->expect($big . "END\r\n", 'large reply from the backend');
my $data = join '', map { chr(($_ * 7) % 256) } 1 .. 70000;
$s->write("UPLOAD 70000\r\n$data");
$s->expect('GOT 70000 ' . unpack('%32C*', $data) . "\r\n", 'large upload to the backend');
$s->close;

$t->stop();
