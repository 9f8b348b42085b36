#!/usr/bin/perl

# IMAP front end: every reply before login byte for byte (greeting,
# CAPABILITY as configured, NOOP, LOGOUT, invalid commands and tags,
# quoted strings and literals, pipelining, max_errors, too long commands,
# the timeout), every AUTHENTICATE method with the auth_http request it
# makes, and a full login through auth_http to a Perl backend.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;

my $t = Test::Postern->new()->has(qw/mail/)->plan(126);
my $dir = $t->testdir;

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/mail/auth;
    server_name example.test;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol imap;
        imap_auth plain login cram-md5 external;
        imap_capabilities IMAP4rev1 IDLE "X-TEST";
        max_errors 3;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol imap;
        imap_client_buffer 128;
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
		my @pass = ($h->{'auth-method'} // '') =~ /^(cram-md5|external)$/
			? ('Auth-Pass: secret') : ();
		return Test::Postern::Daemons::auth_ok($backend, @pass);
	});
$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend, 'imap',
	"$dir/backend.log");
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), $backend;
$t->run();

my $log = "$dir/auth.log";
# the n-th auth_http request (1-based), waited for
sub auth_request {
	my ($n) = @_;
	my @r;
	wait_until(sub { @r = Test::Postern::Daemons::auth_requests($log); @r >= $n }, 5);
	return $r[$n - 1] // { raw => '', h => {} };
}
my $requests = 0;

sub connect_imap {
	my ($port) = @_;
	my $s = Test::Postern::IMAP->new(port => $t->port($port // 0));
	$s->expect("* OK IMAP4 ready\r\n", 'greeting') if !defined $port || $port != -1;
	return $s;
}

# --- before login --------------------------------------------------------

my $s = connect_imap();
$s->send('a1 CAPABILITY');
$s->expect("* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n"
	. "a1 OK completed\r\n", 'capability: defaults, AUTH=PLAIN');
$s->send('a2 NOOP');
$s->expect("a2 OK completed\r\n", 'noop');
$s->send('a.3_x-Y noop');
$s->expect("a.3_x-Y OK completed\r\n", 'tag characters, lower-case command');
$s->send('a4 FOO');
$s->expect("a4 BAD invalid command\r\n", 'unknown command');
$s->send('a5 SELECT INBOX');
$s->expect("a5 BAD invalid command\r\n", 'command of the authenticated state');
$s->close;

# a fresh connection: the default max_errors (5) would close the first
$s = connect_imap();
$s->send('a*6 NOOP');
$s->expect("* BAD invalid command\r\n", 'invalid tag character: untagged');
$s->send('NOOP');
$s->expect("* BAD invalid command\r\n", 'no tag');
$s->send('a' x 32 . ' NOOP');
$s->expect('a' x 32 . " OK completed\r\n", 'tag of 32 characters');
$s->send('a' x 33 . ' NOOP');
$s->expect("* BAD invalid command\r\n", 'tag of 33 characters');
$s->close;

$s = connect_imap();
$s->send('a7 NOOP extra');
$s->expect("a7 OK completed\r\n", 'noop ignores arguments');
$s->send('a8  NOOP');
$s->expect("a8 OK completed\r\n", 'spaces before command');
$s->send('a9 LOGIN onlyone');
$s->expect("a9 BAD invalid command\r\n", 'login with one argument');
$s->send('a10 LOGIN a b c');
$s->expect("a10 BAD invalid command\r\n", 'login with three arguments');
$s->send('a11 LOGIN "" pass');
$s->expect("a11 BAD invalid command\r\n", 'login with an empty user');
$s->send('a12 AUTHENTICATE');
$s->expect("a12 BAD invalid command\r\n", 'authenticate without mechanism');
$s->send('a13 AUTHENTICATE DIGEST-MD5');
$s->expect("a13 BAD invalid command\r\n", 'unknown mechanism');
$s->send('a14 AUTHENTICATE CRAM-MD5');
$s->expect("a14 BAD invalid command\r\n", 'cram-md5 not enabled');
$s->send('a15 AUTHENTICATE EXTERNAL');
$s->expect("a15 BAD invalid command\r\n", 'external not enabled');
$s->send('a16 LOGOUT');
$s->expect("* BYE\r\na16 OK completed\r\n", 'logout');
$s->closed('closed after logout');

# pipelining: all commands in one packet, answers in order
$s = connect_imap();
$s->write("b1 NOOP\r\nb2 CAPABILITY\r\nb3 BOGUS\r\nb4 LOGOUT\r\n");
$s->expect("b1 OK completed\r\n"
	. "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\nb2 OK completed\r\n"
	. "b3 BAD invalid command\r\n"
	. "* BYE\r\nb4 OK completed\r\n", 'pipelined commands');
$s->closed('pipelined logout closes');

# a command in pieces, and a bare LF as the line end
$s = connect_imap();
$s->write('c1 NO');
$s->write("OP\r");
$s->write("\n");
$s->expect("c1 OK completed\r\n", 'command split across packets');
$s->write("c2 NOOP\n");
$s->expect("c2 OK completed\r\n", 'LF without CR');

# configured capabilities and auth methods
$s = connect_imap(1);
$s->send('d1 CAPABILITY');
$s->expect("* CAPABILITY IMAP4rev1 IDLE X-TEST AUTH=PLAIN AUTH=LOGIN "
	. "AUTH=CRAM-MD5 AUTH=EXTERNAL\r\nd1 OK completed\r\n",
	'capability: imap_capabilities and imap_auth');

# max_errors 3: the third invalid command closes
$s->send('d2 FOO');
$s->expect("d2 BAD invalid command\r\n", 'first error');
$s->send('d3 NOOP');
$s->expect("d3 OK completed\r\n", 'valid commands do not reset errors');
$s->send('d4 FOO');
$s->expect("d4 BAD invalid command\r\n", 'second error');
$s->send('d5 FOO');
$s->expect("d5 BAD invalid command\r\n", 'third error answered');
$s->closed('max_errors closes');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client sent too many invalid commands while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'max_errors logged');

# too long command (imap_client_buffer 128)
$s = connect_imap(2);
$s->send('e1 NOOP');
$s->expect("e1 OK completed\r\n", 'small buffer works');
$s->write('e2 LOGIN ' . ('x' x 200));
$s->expect("e2 BAD invalid command\r\n", 'too long command');
$s->closed('too long command closes');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client sent too long command "e2 LOGIN x+" while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'too long command logged');

# a literal longer than the buffer
$s = connect_imap(2);
$s->send('e3 LOGIN {300}');
$s->expect("+ OK\r\n", 'continuation for a long literal');
$s->write('y' x 300 . "\r\n");
$s->expect("e3 BAD invalid command\r\n", 'literal longer than the buffer');
$s->closed('long literal closes');

# timeout before login
$s = connect_imap(2);
my $start = time;
$s->{timeout} = 6;
$s->closed('timeout closes the connection');
cmp_ok(time - $start, '<=', 5, 'closed after about the timeout');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client timed out \(110: Connection timed out\) while in auth state, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'timeout logged');

# --- literals and quoted strings ---------------------------------------------

$s = connect_imap();
$s->send('f1 LOGIN {4}');
$s->expect("+ OK\r\n", 'synchronizing literal: continuation');
$s->send('us"r {6}');
$s->expect("+ OK\r\n", 'second literal: continuation');
$s->send('p w\\d"');
$s->expect("f1 OK backend welcome\r\n", 'login with literals');
$requests++;
my $r = auth_request($requests);
is($r->{h}{'auth-user'}, 'us"r', 'literal user verbatim');
is($r->{h}{'auth-pass'}, 'p%20w\\d"', 'literal password escaped for auth_http');
is($r->{h}{'auth-method'}, 'plain', 'login is Auth-Method plain');
$s->send('f2 ECHO hello');
$s->expect("f2 hello\r\n", 'proxied after literal login');
$s->close;

$s = connect_imap();
$s->write("g1 LOGIN {4+}\r\nuser {4+}\r\npass\r\n");
$s->expect("g1 OK backend welcome\r\n", 'non-synchronizing literals: no continuation');
$requests++;
$r = auth_request($requests);
is($r->{h}{'auth-user'} . '/' . $r->{h}{'auth-pass'}, 'user/pass',
	'non-synchronizing literal values');
$s->close;

$s = connect_imap();
$s->send('h1 LOGIN "us\\"er" "p\\\\ss word"');
$s->expect("h1 OK backend welcome\r\n", 'quoted strings with escapes');
$requests++;
$r = auth_request($requests);
is($r->{h}{'auth-user'}, 'us"er', 'quoted user unescaped');
is($r->{h}{'auth-pass'}, 'p\\ss%20word', 'quoted password unescaped');
$s->close;

$s = connect_imap();
$s->send('i2 LOGIN {2}');
$s->expect("+ OK\r\n", 'continuation');
$s->write("ab\r\n");
$s->expect("i2 BAD invalid command\r\n", 'literal as the only argument');
$s->write("i3 LOGIN {1+} x\r\n");
$s->expect("i3 BAD invalid command\r\n", 'literal length not followed by CRLF');
$s->write("i4 LOGIN {x}\r\n");
$s->expect("i4 BAD invalid command\r\n", 'literal length not a number');
$s->write("i5 NOOP\r\n");
$s->expect("i5 OK completed\r\n", 'still usable');

# an invalid command ending with a non-synchronizing literal closes: the
# literal's bytes that follow cannot be told from commands
$s = connect_imap();
$s->write("j1 FOO {3+}\r\n");
$s->expect("j1 BAD invalid command\r\n", 'invalid command with {n+}');
$s->closed('closed after invalid non-synchronizing literal');

# a literal followed by anything but SP or CRLF: accepted as a separator
# by nginx before 1.29 (treated like a space), invalid since
$s = connect_imap();
$s->write("k1 LOGIN {4+}\r\nuserX\"pass\"\r\n");
if (Test::Postern::Mail::nginx_older_than('1.29.6')) {
	$s->expect("k1 OK backend welcome\r\n", 'literal then quote (old nginx)');
	$requests++;
} else {
	$s->expect("k1 BAD invalid command\r\n", 'literal then quote is invalid');
}
$s->close;

# --- AUTHENTICATE --------------------------------------------------------------

my $plain = encode_base64("\0alice\0secret", '');

$s = connect_imap();
$s->send('l1 AUTHENTICATE PLAIN');
$s->expect("+ \r\n", 'plain: empty challenge');
$s->send($plain);
$s->expect("l1 OK backend welcome\r\n", 'plain: logged in');
$requests++;
$r = auth_request($requests);
is(join(',', map { $r->{h}{$_} } qw/auth-method auth-user auth-pass/),
	'plain,alice,secret', 'plain: auth_http request');
like($t->read_file('backend.log'),
	qr/^<< l1 LOGIN \{5\}\r\nalice \{6\}\r\nsecret$/m,
	'backend login with the client tag and literals');
$s->close;

$s = connect_imap();
$s->send("l2 AUTHENTICATE plain $plain");
$s->expect("l2 OK backend welcome\r\n", 'plain with initial response');
$requests++;
is(auth_request($requests)->{h}{'auth-user'}, 'alice', 'plain initial response user');
$s->close;

$s = connect_imap();
$s->send('l3 AUTHENTICATE PLAIN');
$s->expect("+ \r\n", 'plain: challenge');
$s->send('!!notbase64');
$s->expect("l3 BAD invalid command\r\n", 'plain: invalid base64');
$s->send('l4 AUTHENTICATE PLAIN ' . encode_base64("alice", ''));
$s->expect("l4 BAD invalid command\r\n", 'plain: no NUL separators');
$s->send('l5 AUTHENTICATE PLAIN ' . encode_base64("\0alice", ''));
$s->expect("l5 BAD invalid command\r\n", 'plain: no password');
$s->send('l6 AUTHENTICATE PLAIN *');
$s->expect("l6 BAD invalid command\r\n", 'plain: cancelled by *');
$s->close;

$s = connect_imap();
$s->send('m1 AUTHENTICATE LOGIN');
$s->expect("+ VXNlcm5hbWU6\r\n", 'login: Username: challenge');
$s->send(encode_base64('bob', ''));
$s->expect("+ UGFzc3dvcmQ6\r\n", 'login: Password: challenge');
$s->send(encode_base64('hunter2', ''));
$s->expect("m1 OK backend welcome\r\n", 'login: logged in');
$requests++;
$r = auth_request($requests);
is(join(',', map { $r->{h}{$_} } qw/auth-method auth-user auth-pass/),
	'plain,bob,hunter2', 'login: auth_http request (Auth-Method plain)');
$s->close;

$s = connect_imap();
$s->send('m2 AUTHENTICATE LOGIN ' . encode_base64('bob', ''));
$s->expect("+ UGFzc3dvcmQ6\r\n", 'login with initial user: Password: challenge');
$s->send(encode_base64('hunter2', ''));
$s->expect("m2 OK backend welcome\r\n", 'login with initial response');
$requests++;
is(auth_request($requests)->{h}{'auth-user'}, 'bob', 'login initial user');
$s->close;

$s = connect_imap(1);
$s->send('n1 AUTHENTICATE CRAM-MD5');
my $challenge = $s->getline // '';
like($challenge, qr/^\+ [A-Za-z0-9+\/]+=*\r\n\z/, 'cram-md5: challenge');
my ($salt) = $challenge =~ /^\+ (\S+)/;
$salt = decode_base64($salt // '');
like($salt, qr/^<\d+\.\d+\@example\.test>\z/, 'cram-md5: salt <random.time@server_name>');
$s->send(encode_base64('carol 0123456789abcdef0123456789abcdef', ''));
$s->expect("n1 OK backend welcome\r\n", 'cram-md5: logged in');
$requests++;
$r = auth_request($requests);
is(join(',', map { $r->{h}{$_} } qw/auth-method auth-user auth-pass/),
	'cram-md5,carol,0123456789abcdef0123456789abcdef', 'cram-md5: auth_http request');
is($r->{h}{'auth-salt'}, $salt, 'cram-md5: Auth-Salt is the salt sent');
$s->close;

$s = connect_imap(1);
$s->send('n2 AUTHENTICATE CRAM-MD5');
$s->getline;
$s->send(encode_base64('carol', ''));
$s->expect("n2 BAD invalid command\r\n", 'cram-md5: answer without digest');
$s->send('n3 AUTHENTICATE CRAM-MD5 ' . encode_base64('x', ''));
$s->expect("n3 BAD invalid command\r\n", 'cram-md5: no initial response');
$s->close;

$s = connect_imap(1);
$s->send('o1 AUTHENTICATE EXTERNAL');
$s->expect("+ VXNlcm5hbWU6\r\n", 'external: Username: challenge');
$s->send(encode_base64('dave', ''));
$s->expect("o1 OK backend welcome\r\n", 'external: logged in');
$requests++;
$r = auth_request($requests);
is(join(',', map { $r->{h}{$_} // '-' } qw/auth-method auth-user auth-pass/),
	'external,dave,', 'external: auth_http request, empty password');
$s->close;

$s = connect_imap(1);
$s->send('o2 AUTHENTICATE EXTERNAL ' . encode_base64('dave', ''));
$s->expect("o2 OK backend welcome\r\n", 'external with initial response');
$requests++;
is(auth_request($requests)->{h}{'auth-user'}, 'dave', 'external initial user');
$s->close;

# --- auth failure, then the full path with data both ways ------------------------

$s = connect_imap();
$s->send('p1 LOGIN denied pass');
$s->expect("p1 NO Go away\r\n", 'auth_http error text as NO');
$s->closed('closed after an error without Auth-Wait');
$requests++;

$s = connect_imap();
$s->send('q1 LOGIN user pass');
$s->expect("q1 OK backend welcome\r\n", 'login proxied');
$requests++;
$r = auth_request($requests);
is($r->{raw}, "GET /mail/auth HTTP/1.0\r\n"
	. "Host: 127.0.0.1\r\n"
	. "Auth-Method: plain\r\n"
	. "Auth-User: user\r\n"
	. "Auth-Pass: pass\r\n"
	. "Auth-Protocol: imap\r\n"
	. "Auth-Login-Attempt: 1\r\n"
	. "Client-IP: 127.0.0.1\r\n"
	. "\r\n", 'the whole auth_http request');
$s->send('q2 ECHO ' . ('z' x 1000));
$s->expect('q2 ' . ('z' x 1000) . "\r\n", 'client to backend and back');
$s->send('q3 BIG 100000');
my $big = '';
$big .= ('x' x 76) . "\r\n" for 1 .. int(100000 / 76);
$big .= ('x' x (100000 % 76)) . "\r\n";
$s->expect($big . "q3 END\r\n", 'large reply from the backend');
$s->send('q4 LOGOUT');
$s->expect("* BYE\r\nq4 OK LOGOUT completed\r\n", 'logout reaches the backend');
$s->closed('backend close closes the client');

ok(wait_until(sub { $t->read_file('error.log')
	=~ /client logged in, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+, login: "user", upstream: 127\.0\.0\.1:$backend/m }, 5),
	'client logged in logged');

$t->stop();
