#!/usr/bin/perl

# SMTP front end: every reply before login byte for byte (greeting,
# EHLO/HELO with smtp_capabilities and the AUTH list, NOOP, RSET, QUIT,
# MAIL/RCPT before auth, invalid commands and arguments, pipelining,
# max_errors, too long commands, smtp_greeting_delay and its pipelining
# reply), every AUTH method and smtp_auth none with the auth_http request
# they make, and a full login through auth_http to a Perl backend.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail/)->plan(99);
my $dir = $t->testdir;

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    server_name example.test;
    xclient off;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol smtp;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol smtp;
        smtp_auth login plain cram-md5 external;
        smtp_capabilities "SIZE 10240000" PIPELINING 8BITMIME;
        max_errors 3;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol smtp;
        smtp_auth none;
        smtp_client_buffer 256;
    }
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol smtp;
        smtp_greeting_delay 1s;
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
		my @pass = ($h->{'auth-method'} // '') =~ /^(cram-md5|external)$/
			? ('Auth-Pass: secret') : ();
		return Test::Postern::Daemons::auth_ok($backend, @pass);
	});
$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend, 'smtp',
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

sub connect_smtp {
	my ($n) = @_;
	my $s = Test::Postern::SMTP->new(port => $t->port($n // 0));
	$s->expect("220 example.test ESMTP ready\r\n", 'greeting');
	return $s;
}

# --- before login --------------------------------------------------------

my $s = connect_smtp();
$s->send('EHLO client.test');
$s->expect("250-example.test\r\n250 AUTH PLAIN LOGIN\r\n", 'ehlo: default auth list');
$s->send('HELO client.test');
$s->expect("250 example.test\r\n", 'helo');
$s->send('helo client.test');
$s->expect("250 example.test\r\n", 'lower-case helo');
$s->send('HELO');
$s->expect("501 5.5.4 Invalid argument\r\n", 'helo without argument');
$s->send('EHLO');
$s->expect("501 5.5.4 Invalid argument\r\n", 'ehlo without argument');
$s->send('NOOP');
$s->expect("250 2.0.0 OK\r\n", 'noop');
$s->send('RSET');
$s->expect("250 2.0.0 OK\r\n", 'rset');
$s->send('MAIL FROM:<a@example.test>');
$s->expect("530 5.7.1 Authentication required\r\n", 'mail before auth');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client was rejected: "MAIL FROM:<a\@example\.test>__" while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'rejected mail logged with CR LF shown as _');
$s->send('RCPT TO:<b@example.test>');
$s->expect("503 5.5.1 Bad sequence of commands\r\n", 'rcpt before mail');
$s->send('DATA');
$s->expect("500 5.5.1 Invalid command\r\n", 'data before auth');
$s->send('AUTH');
$s->expect("501 5.5.4 Invalid argument\r\n", 'auth without mechanism');
$s->send('AUTH DIGEST-MD5');
$s->expect("500 5.5.1 Invalid command\r\n", 'unknown mechanism');
$s->send('AUTH CRAM-MD5');
$s->expect("500 5.5.1 Invalid command\r\n", 'cram-md5 not enabled');
$s->send('AUTH EXTERNAL');
$s->expect("500 5.5.1 Invalid command\r\n", 'external not enabled');
$s->close;

$s = connect_smtp();
$s->send('STARTTLS');
$s->expect("500 5.5.1 Invalid command\r\n", 'starttls not configured');
$s->send('VRFY postmaster');
$s->expect("500 5.5.1 Invalid command\r\n", 'vrfy');
$s->send('QUIT');
$s->expect("221 2.0.0 Bye\r\n", 'quit');
$s->closed('closed after quit');

# pipelining
$s = connect_smtp();
$s->write("EHLO client.test\r\nNOOP\r\nRCPT TO:<a\@b>\r\nFOO\r\nRSET\r\nQUIT\r\n");
$s->expect("250-example.test\r\n250 AUTH PLAIN LOGIN\r\n250 2.0.0 OK\r\n"
	. "503 5.5.1 Bad sequence of commands\r\n500 5.5.1 Invalid command\r\n"
	. "250 2.0.0 OK\r\n221 2.0.0 Bye\r\n",
	'pipelined commands');
$s->closed('pipelined quit closes');

# configured capabilities and methods
$s = connect_smtp(1);
$s->send('EHLO client.test');
$s->expect("250-example.test\r\n250-SIZE 10240000\r\n250-PIPELINING\r\n"
	. "250-8BITMIME\r\n250 AUTH PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n",
	'ehlo: smtp_capabilities and smtp_auth');
$s->send('HELO client.test');
$s->expect("250 example.test\r\n", 'helo: no capabilities');

# max_errors 3
$s->send('FOO');
$s->expect("500 5.5.1 Invalid command\r\n", 'first error');
$s->send('BAR');
$s->expect("500 5.5.1 Invalid command\r\n", 'second error');
$s->send('BAZ');
$s->expect("500 5.5.1 Invalid command\r\n", 'third error answered');
$s->closed('max_errors closes');

# too long command (smtp_client_buffer 256)
$s = connect_smtp(2);
$s->write('EHLO ' . ('h' x 400));
$s->expect("500 5.5.1 Invalid command\r\n", 'too long command');
$s->closed('too long command closes');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client sent too long command "EHLO h+" while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'too long command logged');

# smtp_greeting_delay: a client that talks first is refused
$s = Test::Postern::SMTP->new(port => $t->port(3));
$s->send('EHLO eager.test');
$s->expect("503 5.5.0 Improper use of SMTP command pipelining\r\n",
	'greeting delay: invalid pipelining');
$s->closed('greeting delay: closed');
$s = Test::Postern::SMTP->new(port => $t->port(3));
my $start = time;
$s->expect("220 example.test ESMTP ready\r\n", 'greeting after the delay');
$s->send('EHLO patient.test');
$s->expect("250-example.test\r\n250 AUTH PLAIN LOGIN\r\n", 'patient client served');
$s->close;

# --- AUTH methods ----------------------------------------------------------------

my $plain = encode_base64("\0alice\0secret", '');
$s = connect_smtp();
$s->send('EHLO client.test');
$s->read;
$s->send('AUTH PLAIN');
$s->expect("334 \r\n", 'plain: empty challenge');
$s->send($plain);
$s->expect("235 2.0.0 OK\r\n", 'plain: authenticated');
my $h = next_request();
is(fields($h), 'plain,alice,secret', 'plain: auth_http request');
is($h->{'auth-protocol'}, 'smtp', 'Auth-Protocol smtp');
is($h->{'client-host'}, '[UNAVAILABLE]', 'Client-Host without a resolver');
ok(!grep({ /^auth-smtp/ } keys %$h), 'no Auth-SMTP-* headers unless smtp_auth none');
$s->send('MAIL FROM:<alice@example.test>');
$s->expect("250 2.1.0 sender ok\r\n", 'mail after auth reaches the backend');
$s->send('ECHO hello');
$s->expect("hello\r\n", 'proxied both ways');
$s->send('QUIT');
$s->expect("221 bye\r\n", 'quit reaches the backend');
$s->closed('backend close closes the client');

$s = connect_smtp();
$s->send("AUTH PLAIN $plain");
$s->expect("235 2.0.0 OK\r\n", 'plain with initial response, without EHLO');
$h = next_request();
is(fields($h), 'plain,alice,secret', 'plain initial response: request');
$s->close;

$s = connect_smtp();
$s->send('AUTH PLAIN');
$s->read;
$s->send('#####');
$s->expect("500 5.5.1 Invalid command\r\n", 'plain: invalid base64');
$s->send('AUTH PLAIN ' . encode_base64('nonul', ''));
$s->expect("500 5.5.1 Invalid command\r\n", 'plain: no NUL');
$s->close;

$s = connect_smtp();
$s->send('AUTH LOGIN');
$s->expect("334 VXNlcm5hbWU6\r\n", 'login: Username:');
$s->send(encode_base64('bob', ''));
$s->expect("334 UGFzc3dvcmQ6\r\n", 'login: Password:');
$s->send(encode_base64('pw', ''));
$s->expect("235 2.0.0 OK\r\n", 'login: authenticated');
is(fields(next_request()), 'plain,bob,pw', 'login: request (Auth-Method plain)');
$s->close;

$s = connect_smtp();
$s->send('AUTH LOGIN ' . encode_base64('bob', ''));
$s->expect("334 UGFzc3dvcmQ6\r\n", 'login with initial user');
$s->send(encode_base64('pw', ''));
$s->expect("235 2.0.0 OK\r\n", 'login initial response: authenticated');
is(fields(next_request()), 'plain,bob,pw', 'login initial response: request');
$s->close;

$s = connect_smtp(1);
$s->send('AUTH CRAM-MD5');
my $challenge = $s->getline // '';
like($challenge, qr/^334 [A-Za-z0-9+\/]+=*\r\n\z/, 'cram-md5: challenge');
my ($salt) = $challenge =~ /^334 (\S+)/;
$salt = decode_base64($salt // '');
like($salt, qr/^<\d+\.\d+\@example\.test>\z/, 'cram-md5: salt');
$s->send(encode_base64('carol 0123456789abcdef0123456789abcdef', ''));
$s->expect("235 2.0.0 OK\r\n", 'cram-md5: authenticated');
$h = next_request();
is(fields($h), 'cram-md5,carol,0123456789abcdef0123456789abcdef', 'cram-md5: request');
is($h->{'auth-salt'}, $salt, 'cram-md5: Auth-Salt');
$s->close;

$s = connect_smtp(1);
$s->send('AUTH EXTERNAL');
$s->expect("334 VXNlcm5hbWU6\r\n", 'external: Username:');
$s->send(encode_base64('dave', ''));
$s->expect("235 2.0.0 OK\r\n", 'external: authenticated');
is(fields(next_request()), 'external,dave,', 'external: request');
$s->close;

$s = connect_smtp(1);
$s->send('AUTH EXTERNAL ' . encode_base64('dave', ''));
$s->expect("235 2.0.0 OK\r\n", 'external with initial response');
is(fields(next_request()), 'external,dave,', 'external initial response: request');
$s->close;

# auth failure: 535 with the text, and close without Auth-Wait
$s = connect_smtp();
$s->send('AUTH PLAIN ' . encode_base64("\0denied\0x", ''));
$s->expect("535 5.7.0 Go away\r\n", 'auth_http error as 535 5.7.0');
$s->closed('closed after the error');
next_request();

# --- smtp_auth none ----------------------------------------------------------

$s = connect_smtp(2);
$s->send('EHLO client.test');
$s->expect("250 example.test\r\n", 'smtp_auth none: ehlo without AUTH');
$s->send('AUTH CRAM-MD5');
$s->expect("500 5.5.1 Invalid command\r\n", 'smtp_auth none: cram-md5 is invalid');
$s->send('RCPT TO:<x@example.test>');
$s->expect("503 5.5.1 Bad sequence of commands\r\n", 'smtp_auth none: rcpt before mail');
$s->send('MAIL FROM:<from@example.test> SIZE=100');
$s->expect("250 2.0.0 OK\r\n", 'smtp_auth none: mail accepted locally');
$s->send('MAIL FROM:<again@example.test>');
$s->expect("503 5.5.1 Bad sequence of commands\r\n", 'smtp_auth none: second mail');
$s->send('RCPT TO:<to@example.test>');
$s->expect("250 2.1.5 recipient ok\r\n", 'smtp_auth none: rcpt answered by the backend');
$h = next_request();
is(fields($h), 'none,,', 'smtp_auth none: Auth-Method none, no user');
is($h->{'auth-smtp-helo'}, 'client.test', 'Auth-SMTP-Helo');
is($h->{'auth-smtp-from'}, 'MAIL FROM:<from@example.test> SIZE=100', 'Auth-SMTP-From is the command');
is($h->{'auth-smtp-to'}, 'RCPT TO:<to@example.test>', 'Auth-SMTP-To is the command');
ok(!exists $h->{'auth-salt'}, 'no Auth-Salt');
$s->send('DATA');
$s->expect("250 done\r\n", 'data reaches the backend');
$s->close;
like($t->read_file('backend.log'),
	qr/^<< EHLO example\.test\n<< MAIL FROM:<from\@example\.test> SIZE=100\n<< RCPT TO:<to\@example\.test>\n<< DATA$/m,
	'smtp_auth none: EHLO (client used EHLO) with server_name, MAIL and RCPT replayed (xclient off)');

$s = connect_smtp(2);
$s->send('MAIL FROM:<from@example.test>');
$s->expect("250 2.0.0 OK\r\n", 'smtp_auth none: mail without helo');
$s->send('RSET');
$s->expect("250 2.0.0 OK\r\n", 'rset');
$s->send('MAIL FROM:<other@example.test>');
$s->expect("250 2.0.0 OK\r\n", 'mail again after rset');
$s->close;

$t->stop();
