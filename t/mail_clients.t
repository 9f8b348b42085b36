#!/usr/bin/perl

# The IMAP, POP3 and SMTP test clients against a full mail path: client ->
# server under test -> auth_http daemon -> Perl backend.  Mail sessions
# arrive in Postern with the mail issue: until then this runs only against
# nginx or with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64);
use Test::More;
use Test::Postern;
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
$t->plan(22);

my $dir = $t->testdir;

# a self-signed certificate for implicit TLS and STARTTLS
$t->self_signed('cert');

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    ssl_certificate cert.pem;
    ssl_certificate_key cert.key;
    xclient off;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
        starttls on;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol smtp;
        smtp_auth plain login;
    }
}
EOF

my %backend = (imap => $t->port(11), pop3 => $t->port(12), smtp => $t->port(13));
$t->run_daemon(\&Test::Postern::Daemons::auth_http, $t->port(10), \%backend,
	"$dir/auth.log");
$t->run_daemon(\&Test::Postern::Daemons::imap_backend, $backend{imap});
$t->run_daemon(\&Test::Postern::Daemons::pop3_backend, $backend{pop3});
$t->run_daemon(\&Test::Postern::Daemons::smtp_backend, $backend{smtp});
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), values %backend;

$t->run();

# --- IMAP ----------------------------------------------------------------------

my $s = Test::Postern::IMAP->new(port => $t->port(0));
$s->check(qr/^\* OK /, 'imap greeting');
$s->cmd('CAPABILITY');
my @caps = $s->read_tagged;
like($caps[0], qr/^\* CAPABILITY .*STARTTLS/, 'imap capability untagged');
like($caps[-1], qr/^a1 OK /, 'imap capability tagged');

$s->cmd('STARTTLS');
$s->ok('imap starttls');
$s->start_tls();
ok($s->is_tls, 'imap tls after starttls');

$s->cmd('LOGIN test secret');
$s->ok('imap login proxied');
$s->cmd('FETCH 1 BODY[]');
my @fetch = $s->read_tagged;
is($fetch[0], "* 1 FETCH (BODY[] {5}\r\nhello)\r\n", 'imap literal folded');
like($fetch[-1], qr/^a4 OK FETCH/, 'imap fetch tagged');
$s->cmd('LOGOUT');
$s->ok('imap logout');

like($t->read_file('auth.log'), qr/^Auth-User: test\r$/m, 'auth_http got the user');

# implicit TLS
$s = Test::Postern::IMAP->new(port => $t->port(1), SSL => 1);
ok($s->is_tls, 'imaps connected');
$s->check(qr/^\* OK /, 'imaps greeting');
$s->cmd('LOGIN test secret');
$s->ok('imaps login');
$s->cmd('CAPABILITY');
like(($s->read_tagged)[0], qr/BACKEND/, 'imaps talks to the backend');

# --- POP3 ----------------------------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(2));
$s->check(qr/^\+OK /, 'pop3 greeting');
$s->send('USER test');
$s->ok('pop3 user');
$s->send('PASS secret');
$s->ok('pop3 pass');
$s->send('LIST');
is($s->read_multiline, "+OK 2 messages\r\n1 100\r\n2 200\r\n", 'pop3 multi-line');

# --- SMTP ----------------------------------------------------------------------

$s = Test::Postern::SMTP->new(port => $t->port(3));
$s->check(qr/^220 .* ESMTP ready\r\n\z/, 'smtp greeting');
$s->send('EHLO example.com');
like($s->read, qr/^250-.*\r\n(250-.*\r\n)*250 .*\r\n\z/, 'smtp multi-line ehlo');
$s->send('AUTH PLAIN ' . encode_base64("\0test\0secret", ''));
$s->authok('smtp auth');
$s->send('QUIT');
$s->check(qr/^221 /, 'smtp quit reaches the backend');
