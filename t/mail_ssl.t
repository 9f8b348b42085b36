#!/usr/bin/perl

# TLS on mail connections: ALPN, client certificates (every verify mode,
# the protocols' refusals, the Auth-SSL-* headers auth_http receives) and
# session resumption with two workers (shared cache, tickets, ticket key
# rotation across a reload).  Like mail_clients.t this needs mail
# sessions: it runs against nginx, or with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
eval { require IO::Socket::SSL; IO::Socket::SSL->VERSION(2.061); 1 }
	or Test::More::plan(skip_all => 'IO::Socket::SSL too old');
$t->plan(29);

my $dir = $t->testdir;

# A CA, the server certificate, a client certificate from the CA and a
# self-signed one.
$t->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj/,
	'/O=Postern Test/CN=Test CA', '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem");
$t->self_signed('server');
$t->openssl(qw/req -newkey rsa:2048 -nodes -subj/, '/O=Postern Test/CN=alice',
	'-keyout', "$dir/alice.key", '-out', "$dir/alice.csr");
$t->openssl(qw/x509 -req -days 2 -set_serial 0x1234/, '-in', "$dir/alice.csr",
	'-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-out', "$dir/alice.pem");
$t->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj \/CN=mallory/,
	'-keyout', "$dir/mallory.key", '-out', "$dir/mallory.pem");

open my $fh, '>', "$dir/t1.key" or die; print $fh 'a' x 80; close $fh;
open $fh, '>', "$dir/t2.key" or die; print $fh 'b' x 48; close $fh;

my $conf = <<'EOF';
%%TEST_GLOBALS%%
worker_processes 2;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    auth_http_pass_client_cert on;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    xclient off;

    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_verify_client optional;
        ssl_client_certificate ca.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol imap;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        protocol pop3;
        ssl_verify_client optional_no_ca;
    }
    server {
        listen 127.0.0.1:%%PORT_3%% ssl;
        protocol smtp;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_4%% ssl;
        protocol imap;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;
    }
    server {
        listen 127.0.0.1:%%PORT_5%% ssl;
        protocol imap;
        %%TICKET_KEYS%%
    }
}
EOF

sub write_conf {
	my ($keys) = @_;
	(my $c = $conf) =~ s/%%TICKET_KEYS%%/$keys/;
	$t->write_file_expand('postern.conf', $c);
}

write_conf('ssl_session_ticket_key t1.key;');

my %backend = (imap => $t->port(11), pop3 => $t->port(12), smtp => $t->port(13));
$t->run_daemon(\&Test::Postern::Daemons::auth_http, $t->port(10), \%backend,
	"$dir/auth.log");
$t->run_daemon(\&Test::Postern::Daemons::imap_backend, $backend{imap});
$t->run_daemon(\&Test::Postern::Daemons::pop3_backend, $backend{pop3});
$t->run_daemon(\&Test::Postern::Daemons::smtp_backend, $backend{smtp});
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), values %backend;

$t->run();

# The last auth_http request, as headers.
sub last_auth {
	my $log = $t->read_file('auth.log') // '';
	my @req = split /\r\n\r\n/, $log;
	my %h;
	$h{$1} = $2 while ($req[-1] // '') =~ /^([\w-]+): (.*?)\r?$/mg;
	return \%h;
}

sub imap_login {
	my ($s) = @_;
	$s->check(qr/^\* OK /, 'greeting');
	$s->cmd('LOGIN alice secret');
	return join '', $s->read_tagged;
}

# --- ALPN ----------------------------------------------------------------------

my $s = Test::Postern::IMAP->new(port => $t->port(4), SSL => 1,
	SSL_alpn_protocols => ['imap']);
is($s->socket->alpn_selected, 'imap', 'alpn imap selected');
$s->close;

my $ok = eval { Test::Postern::IMAP->new(port => $t->port(4), SSL => 1,
	SSL_alpn_protocols => ['pop3']); 1 };
ok(!$ok, 'alpn of another protocol refused');
like($@, qr/no application protocol/i, 'alpn refused with a fatal alert');

# --- client certificates ---------------------------------------------------------

$s = Test::Postern::IMAP->new(port => $t->port(0), SSL => 1,
	SSL_cert_file => "$dir/alice.pem", SSL_key_file => "$dir/alice.key");
like(imap_login($s), qr/OK/, 'optional: login with a certificate');
my $h = last_auth();
is($h->{'Auth-SSL'}, 'on', 'Auth-SSL');
like($h->{'Auth-SSL-Protocol'}, qr/^TLSv1\.[23]$/, 'Auth-SSL-Protocol');
ok($h->{'Auth-SSL-Cipher'}, 'Auth-SSL-Cipher');
is($h->{'Auth-SSL-Verify'}, 'SUCCESS', 'Auth-SSL-Verify');
is($h->{'Auth-SSL-Subject'}, 'CN=alice,O=Postern Test', 'Auth-SSL-Subject');
is($h->{'Auth-SSL-Issuer'}, 'CN=Test CA,O=Postern Test', 'Auth-SSL-Issuer');
is($h->{'Auth-SSL-Serial'}, '1234', 'Auth-SSL-Serial');
like($h->{'Auth-SSL-Fingerprint'}, qr/^[0-9a-f]{40}$/, 'Auth-SSL-Fingerprint');
like($h->{'Auth-SSL-Cert'}, qr/^-----BEGIN%20CERTIFICATE-----%0A/,
	'Auth-SSL-Cert, escaped');
$s->close;

$s = Test::Postern::IMAP->new(port => $t->port(0), SSL => 1);
like(imap_login($s), qr/OK/, 'optional: login without a certificate');
is(last_auth()->{'Auth-SSL-Verify'}, 'NONE', 'no certificate: NONE');
$s->close;

$s = Test::Postern::IMAP->new(port => $t->port(0), SSL => 1,
	SSL_cert_file => "$dir/mallory.pem", SSL_key_file => "$dir/mallory.key");
$s->check(qr/^\* BYE SSL certificate error\r\n$/, 'optional: untrusted certificate refused');
$s->close;

$s = Test::Postern::IMAP->new(port => $t->port(1), SSL => 1);
$s->check(qr/^\* BYE No required SSL certificate\r\n$/, 'on: imap without a certificate');
$s->close;

$s = Test::Postern::SMTP->new(port => $t->port(3), SSL => 1);
$s->check(qr/^421 4\.7\.1 No required SSL certificate\r\n$/, 'on: smtp without a certificate');
$s->close;

$s = Test::Postern::POP3->new(port => $t->port(2), SSL => 1,
	SSL_cert_file => "$dir/mallory.pem", SSL_key_file => "$dir/mallory.key");
$s->check(qr/^\+OK /, 'optional_no_ca: self-signed accepted');
$s->send('USER alice');
$s->check(qr/^\+OK/, 'pop3 user');
$s->send('PASS secret');
$s->check(qr/^\+OK/, 'pop3 pass');
like(last_auth()->{'Auth-SSL-Verify'}, qr/^FAILED:self[- ]signed certificate$/,
	'optional_no_ca: the failure goes to auth_http');
$s->close;

# --- resumption with two workers ---------------------------------------------------

# Connections with one client context; how many of the later ones resumed.
sub reused {
	my ($port, $n) = @_;
	my $ctx = IO::Socket::SSL::SSL_Context->new(
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_session_cache_size => 16);
	my $count = 0;
	for my $i (0 .. $n) {
		my $c = Test::Postern::IMAP->new(port => $port, SSL => 1,
			SSL_reuse_ctx => $ctx);
		# reading the greeting also takes in TLSv1.3 tickets
		$c->getline;
		$count++ if $i && $c->socket->get_session_reused;
		$c->close;
	}
	return $count;
}

is(reused($t->port(4), 10), 10, 'shared cache: every connection resumed');
is(reused($t->port(5), 10), 10, 'ticket key file: every connection resumed');

# Ticket key rotation by reload: the first key encrypts, all decrypt.
sub client_ctx {
	return IO::Socket::SSL::SSL_Context->new(
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_session_cache_size => 16);
}

sub resumed_now {
	my ($ctx) = @_;
	my $c = Test::Postern::IMAP->new(port => $t->port(5), SSL => 1,
		SSL_reuse_ctx => $ctx);
	$c->getline;
	my $r = $c->socket->get_session_reused ? 1 : 0;
	$c->close;
	return $r;
}

my $old = client_ctx();
resumed_now($old);
write_conf('ssl_session_ticket_key t2.key; ssl_session_ticket_key t1.key;');
$t->reload;
is(resumed_now($old), 1, 'a ticket under the previous key resumes');
my $new = client_ctx();
resumed_now($new);
write_conf('ssl_session_ticket_key t2.key;');
$t->reload;
is(resumed_now($new), 1, 'a ticket under the new key resumes after the old one goes');
write_conf('ssl_session_ticket_key t1.key;');
$t->reload;
is(resumed_now($new), 0, 'a ticket under a dropped key does not resume');

$t->stop();
