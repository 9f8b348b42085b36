#!/usr/bin/perl

# Client certificate verification in depth: ssl_crl (a revoked client is
# refused with each protocol's certificate error, with the info line in
# the error log), ssl_verify_depth with a client issued by an intermediate
# CA, ssl_client_certificate (CA names sent in the CertificateRequest) vs
# ssl_trusted_certificate (not sent), optional_no_ca with a self-signed
# client, and the exact Auth-SSL-* headers auth_http receives, the
# escaped PEM of auth_http_pass_client_cert included.  The basic verify
# modes are in mail_ssl.t.  Needs mail sessions: runs against nginx, or
# Postern with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes ();
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
eval { require IO::Socket::SSL; IO::Socket::SSL->VERSION(2.061); 1 }
	or Test::More::plan(skip_all => 'IO::Socket::SSL too old');
eval { require MIME::Base64; 1 }
	or Test::More::plan(skip_all => 'no MIME::Base64');
$t->plan(69);

my $dir = $t->testdir;

# --- certificates ------------------------------------------------------------

# root CA -> intermediate CA -> bob; root -> intermediate -> second
# intermediate -> dave; root -> alice, carol (revoked); mallory
# self-signed; the server's own certificate self-signed.
$t->write_file('ext.cnf', <<'EOF');
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_client ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF

$t->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj/,
	'/O=Postern Test/CN=Test Root CA', '-keyout', "$dir/root.key",
	'-out', "$dir/root.pem");
$t->openssl(qw/req -newkey rsa:2048 -nodes -subj/,
	'/O=Postern Test/CN=Test Intermediate CA', '-keyout', "$dir/inter.key",
	'-out', "$dir/inter.csr");
$t->openssl(qw/x509 -req -days 2 -set_serial 0x1001/, '-in', "$dir/inter.csr",
	'-CA', "$dir/root.pem", '-CAkey', "$dir/root.key",
	'-extfile', "$dir/ext.cnf", '-extensions', 'v3_ca',
	'-out', "$dir/inter.pem");
$t->openssl(qw/req -newkey rsa:2048 -nodes -subj/,
	'/O=Postern Test/CN=Test Second Intermediate CA', '-keyout', "$dir/inter2.key",
	'-out', "$dir/inter2.csr");
$t->openssl(qw/x509 -req -days 2 -set_serial 0x1002/, '-in', "$dir/inter2.csr",
	'-CA', "$dir/inter.pem", '-CAkey', "$dir/inter.key",
	'-extfile', "$dir/ext.cnf", '-extensions', 'v3_ca',
	'-out', "$dir/inter2.pem");
$t->self_signed('server');

sub client_cert {
	my ($name, $subj, $ca, $serial) = @_;
	$t->openssl(qw/req -newkey rsa:2048 -nodes -subj/, $subj,
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
	$t->openssl(qw/x509 -req -days 2/, '-set_serial', $serial,
		'-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
		'-CAkey', "$dir/$ca.key", '-extfile', "$dir/ext.cnf",
		'-extensions', 'v3_client', '-out', "$dir/$name.pem");
}

client_cert('alice', '/O=Postern Test/CN=alice', 'root', '0x1234');
client_cert('carol', '/O=Postern Test/CN=carol', 'root', '0x5678');
client_cert('bob', '/O=Postern Test/OU=People/CN=bob', 'inter', '0x0102AB');
client_cert('dave', '/O=Postern Test/OU=People/CN=dave', 'inter2', '0x00F1');
$t->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj/,
	'/O=Elsewhere/CN=mallory', '-keyout', "$dir/mallory.key",
	'-out', "$dir/mallory.pem");

# the chains as the clients send them: their certificate, then the
# intermediates up to (not including) the root
$t->write_file('bob-chain.pem',
	$t->read_file('bob.pem') . $t->read_file('inter.pem'));
$t->write_file('dave-chain.pem', $t->read_file('dave.pem')
	. $t->read_file('inter2.pem') . $t->read_file('inter.pem'));

# A CRL of the root CA revoking carol, made with `openssl ca`.
$t->write_file('index.txt', '');
$t->write_file('crlnumber', "01\n");
$t->write_file('ca.cnf', <<"EOF");
[ ca ]
default_ca = root_ca
[ root_ca ]
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/root.pem
private_key = $dir/root.key
default_md = sha256
default_crl_days = 2
EOF
$t->openssl(qw/ca -batch -config/, "$dir/ca.cnf", '-revoke', "$dir/carol.pem");
$t->openssl(qw/ca -batch -gencrl -config/, "$dir/ca.cnf", '-out', "$dir/crl.pem");

# --- daemons and the server under test ---------------------------------------------

my %backend = (imap => $t->port(11), pop3 => $t->port(12), smtp => $t->port(13));
my $auth_log = "$dir/auth.log";
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	$auth_log, sub {
		my ($h) = @_;
		return Test::Postern::Daemons::auth_ok(
			$backend{$h->{'auth-protocol'} // ''} // 1);
	});
for my $proto (sort keys %backend) {
	$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend{$proto},
		$proto, "$dir/backend-$proto.log");
}
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), values %backend;

# Before nginx 1.27.2 ssl_verify_client on/optional needs
# ssl_client_certificate; ssl_trusted_certificate alone is accepted there
# only with optional_no_ca, which verifies a root-issued client the same.
my $trusted_mode = Test::Postern::Mail::nginx_older_than('1.27.2')
	? 'optional_no_ca' : 'optional';

my $conf = <<'EOF';
%%TEST_GLOBALS%%
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    auth_http_pass_client_cert on;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    xclient off;

    # ssl_crl: carol is revoked; each protocol's refusal
    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_verify_client on;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol pop3;
        ssl_verify_client on;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        protocol smtp;
        ssl_verify_client on;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_3%% ssl;
        protocol imap;
        ssl_verify_client optional;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_4%% ssl;
        protocol imap;
        ssl_verify_client optional_no_ca;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
    }

    # ssl_verify_depth with a client issued by the intermediate CA
    server {
        listen 127.0.0.1:%%PORT_5%% ssl;
        protocol imap;
        ssl_verify_client optional;
        ssl_client_certificate root.pem;
        ssl_verify_depth 1;
    }
    server {
        listen 127.0.0.1:%%PORT_6%% ssl;
        protocol pop3;
        ssl_verify_client on;
        ssl_client_certificate root.pem;
        ssl_verify_depth 2;
    }

    # trusted, not advertised
    server {
        listen 127.0.0.1:%%PORT_7%% ssl;
        protocol imap;
        ssl_verify_client %%TRUSTED_MODE%%;
        ssl_trusted_certificate root.pem;
        auth_http_pass_client_cert off;
    }
    # the root advertised, the intermediate only trusted
    server {
        listen 127.0.0.1:%%PORT_8%% ssl;
        protocol imap;
        ssl_verify_client optional;
        ssl_client_certificate root.pem;
        ssl_trusted_certificate inter.pem;
        ssl_verify_depth 2;
    }

    # a self-signed client where CAs are not required
    server {
        listen 127.0.0.1:%%PORT_9%% ssl;
        protocol smtp;
        ssl_verify_client optional_no_ca;
        ssl_client_certificate root.pem;
    }

    # a refused client's session is dropped from the cache
    server {
        listen 127.0.0.1:%%PORT_15%% ssl;
        protocol imap;
        ssl_verify_client on;
        ssl_client_certificate root.pem;
        ssl_crl crl.pem;
        ssl_session_cache shared:VERIFY:1m;
        ssl_session_tickets off;
    }

    # no verification: no certificate headers
    server {
        listen 127.0.0.1:%%PORT_14%% ssl;
        protocol imap;
    }
}
EOF
$conf =~ s/%%TRUSTED_MODE%%/$trusted_mode/;
$t->write_file_expand('postern.conf', $conf);

$t->run();

# --- helpers -----------------------------------------------------------------------

# The newest auth_http request: { raw => text, h => { lc name => value } }.
sub last_auth {
	my @r = Test::Postern::Daemons::auth_requests($auth_log);
	return $r[-1] // { raw => '', h => {} };
}

sub auth_count {
	return scalar(my @r = Test::Postern::Daemons::auth_requests($auth_log));
}

sub client_opts {
	my ($who, $cert) = @_;
	return () unless defined $who;
	return (SSL_cert_file => "$dir/" . ($cert // "$who.pem"),
		SSL_key_file => "$dir/$who.key");
}

# Logs in over IMAP; returns the tagged reply.
sub imap_login {
	my ($port, @opts) = @_;
	my $s = Test::Postern::IMAP->new(port => $port, SSL => 1, @opts);
	my $greeting = $s->read // '';
	return "greeting: $greeting" unless $greeting =~ /^\* OK /;
	$s->cmd('LOGIN user secret');
	my @lines = $s->read_tagged;
	$s->close;
	return $lines[-1] // '';
}

sub pop3_login {
	my ($port, @opts) = @_;
	my $s = Test::Postern::POP3->new(port => $port, SSL => 1, @opts);
	my $greeting = $s->read // '';
	return "greeting: $greeting" unless $greeting =~ /^\+OK /;
	$s->send('USER user');
	$s->read;
	$s->send('PASS secret');
	my $r = $s->read // '';
	$s->close;
	return $r;
}

sub smtp_login {
	my ($port, @opts) = @_;
	my $s = Test::Postern::SMTP->new(port => $port, SSL => 1, @opts);
	my $greeting = $s->read // '';
	return "greeting: $greeting" unless $greeting =~ /^220 /;
	$s->send('EHLO client.test');
	$s->read;
	$s->send('AUTH PLAIN ' . MIME::Base64::encode_base64("\0user\0secret", ''));
	my $r = $s->read // '';
	$s->close;
	return $r;
}

# Everything the server sends on a new connection, to EOF; "[not closed]"
# is added when the server keeps the connection open.
sub refusal {
	my ($class, $port, @opts) = @_;
	my $s = $class->new(port => $port, SSL => 1, timeout => 3, @opts);
	my $start = Time::HiRes::time();
	my $all = '';
	while (defined(my $line = $s->getline)) {
		$all .= $line;
	}
	$all .= '[not closed]' if Time::HiRes::time() - $start > 2.5;
	$s->close;
	return $all;
}

# The info line logged for a refused client, for this port.
sub verify_error_logged {
	my ($code, $text, $port) = @_;
	my $re = qr/\[info\] \d+#\d+: \*\d+ client SSL certificate verify error: \Q($code:$text)\E while SSL handshaking, client: 127\.0\.0\.1, server: 127\.0\.0\.1:$port$/m;
	return wait_until(sub { $t->read_file('error.log') =~ $re }, 5) ? 1 : 0;
}

# auth_http's view of a certificate, computed from the PEM file the way
# nginx does: RFC 2253 names, the serial in upper-case hex, the SHA-1
# fingerprint in lower-case hex, the PEM with spaces, "%" and control
# characters (the line feeds) percent-escaped.
sub expected_headers {
	my ($name) = @_;
	my $file = "$dir/$name.pem";
	my $subject = $t->openssl(qw/x509 -noout -subject -nameopt RFC2253 -in/, $file);
	my $issuer = $t->openssl(qw/x509 -noout -issuer -nameopt RFC2253 -in/, $file);
	my $fp = $t->openssl(qw/x509 -noout -fingerprint -sha1 -in/, $file);
	$subject =~ s/^subject=\s*//; $subject =~ s/\s+\z//;
	$issuer =~ s/^issuer=\s*//; $issuer =~ s/\s+\z//;
	($fp) = $fp =~ /=([0-9A-F:]+)/;
	$fp =~ s/://g;
	(my $pem = $t->read_file("$name.pem"))
		=~ s/([\x00-\x20%])/sprintf('%%%02X', ord $1)/ge;
	return (subject => $subject, issuer => $issuer,
		fingerprint => lc $fp, cert => $pem);
}

# --- ssl_crl ---------------------------------------------------------------------

like(imap_login($t->port(0), client_opts('alice')), qr/^a1 OK /,
	'crl, on: a certificate not revoked logs in');
is(last_auth()->{h}{'auth-ssl-verify'}, 'SUCCESS', 'crl: not revoked, SUCCESS');

my $before = auth_count();
is(refusal('Test::Postern::IMAP', $t->port(0), client_opts('carol')),
	"* BYE SSL certificate error\r\n", 'crl, on: imap refuses the revoked client');
ok(verify_error_logged(23, 'certificate revoked', $t->port(0)),
	'crl: the verify error is logged at info');
is(refusal('Test::Postern::POP3', $t->port(1), client_opts('carol')),
	"-ERR SSL certificate error\r\n", 'crl, on: pop3 refuses the revoked client');
ok(verify_error_logged(23, 'certificate revoked', $t->port(1)),
	'crl: pop3 verify error logged');
is(refusal('Test::Postern::SMTP', $t->port(2), client_opts('carol')),
	"421 4.7.1 SSL certificate error\r\n",
	'crl, on: smtp refuses the revoked client');
ok(verify_error_logged(23, 'certificate revoked', $t->port(2)),
	'crl: smtp verify error logged');

# optional only lets a client without a certificate through; a certificate
# that fails verification is refused all the same
is(refusal('Test::Postern::IMAP', $t->port(3), client_opts('carol')),
	"* BYE SSL certificate error\r\n", 'crl, optional: revoked refused');
ok(verify_error_logged(23, 'certificate revoked', $t->port(3)),
	'crl, optional: verify error logged');
like(imap_login($t->port(3), client_opts('alice')), qr/^a1 OK /,
	'crl, optional: a good certificate logs in');
like(imap_login($t->port(3)), qr/^a1 OK /,
	'crl, optional: no certificate logs in');
is(last_auth()->{h}{'auth-ssl-verify'}, 'NONE', 'crl, optional: NONE');

# optional_no_ca forgives only a missing or unknown issuer, not revocation
is(refusal('Test::Postern::IMAP', $t->port(4), client_opts('carol')),
	"* BYE SSL certificate error\r\n", 'crl, optional_no_ca: revoked refused');
ok(verify_error_logged(23, 'certificate revoked', $t->port(4)),
	'crl, optional_no_ca: verify error logged');
# only the two logins on the optional server reached auth_http
is(auth_count(), $before + 2, 'no auth_http request for a refused client');

# with a CRL every certificate of the chain needs one: a self-signed
# client has none, and that error is not one optional_no_ca forgives
is(refusal('Test::Postern::IMAP', $t->port(4), client_opts('mallory')),
	"* BYE SSL certificate error\r\n", 'crl, optional_no_ca: self-signed refused');
ok(verify_error_logged(3, 'unable to get certificate CRL', $t->port(4)),
	'crl, optional_no_ca: no CRL for the self-signed issuer logged');

# --- ssl_verify_depth --------------------------------------------------------------

# depth n: up to n CA certificates between the client's and the root
is(refusal('Test::Postern::IMAP', $t->port(5), client_opts('dave', 'dave-chain.pem')),
	"* BYE SSL certificate error\r\n", 'depth 1: two intermediates refused');
# OpenSSL stops building the chain at the depth limit, short of the root
ok(verify_error_logged(20, 'unable to get local issuer certificate', $t->port(5)),
	'depth 1: the root out of reach logged');
like(imap_login($t->port(5), client_opts('bob', 'bob-chain.pem')), qr/^a1 OK /,
	'depth 1: one intermediate logs in');
is(last_auth()->{h}{'auth-ssl-verify'}, 'SUCCESS', 'depth 1: one intermediate SUCCESS');
like(imap_login($t->port(5), client_opts('alice')), qr/^a1 OK /,
	'depth 1: root-issued logs in');
is(last_auth()->{h}{'auth-ssl-verify'}, 'SUCCESS', 'depth 1: root-issued SUCCESS');

# without the intermediates the root alone cannot verify dave
is(refusal('Test::Postern::POP3', $t->port(6), client_opts('dave')),
	"-ERR SSL certificate error\r\n", 'depth 2: no intermediate sent, refused');
ok(verify_error_logged(21, 'unable to verify the first certificate', $t->port(6)),
	'depth 2: unknown issuer logged');

like(pop3_login($t->port(6), client_opts('dave', 'dave-chain.pem')), qr/^\+OK /,
	'depth 2: two intermediates log in');
my %want = expected_headers('dave');
my $req = last_auth();
my $raw = $req->{raw};
like($raw, qr/^Auth-SSL: on\r$/m, 'Auth-SSL');
# TLSv1.3 is on by default since nginx 1.23.4
my ($proto, $cipher) = Test::Postern::Mail::nginx_older_than('1.23.4')
	? ('TLSv1.2', 'ECDHE-RSA-AES256-GCM-SHA384')
	: ('TLSv1.3', 'TLS_AES_256_GCM_SHA384');
like($raw, qr/^Auth-SSL-Protocol: \Q$proto\E\r$/m, 'Auth-SSL-Protocol');
like($raw, qr/^Auth-SSL-Cipher: \Q$cipher\E\r$/m, 'Auth-SSL-Cipher');
like($raw, qr/^Auth-SSL-Verify: SUCCESS\r$/m, 'Auth-SSL-Verify: SUCCESS');
is($req->{h}{'auth-ssl-subject'}, 'CN=dave,OU=People,O=Postern Test',
	'Auth-SSL-Subject: RFC 2253, most specific first');
is($req->{h}{'auth-ssl-subject'}, $want{subject}, 'Auth-SSL-Subject as openssl prints it');
is($req->{h}{'auth-ssl-issuer'}, 'CN=Test Second Intermediate CA,O=Postern Test',
	'Auth-SSL-Issuer: the intermediate');
is($req->{h}{'auth-ssl-serial'}, 'F1', 'Auth-SSL-Serial: upper-case hex, whole bytes');
is($req->{h}{'auth-ssl-fingerprint'}, $want{fingerprint},
	'Auth-SSL-Fingerprint: SHA-1, lower-case hex');
is($req->{h}{'auth-ssl-cert'}, $want{cert}, 'Auth-SSL-Cert: the escaped PEM');
like($req->{h}{'auth-ssl-cert'} // '',
	qr/^-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9+\/=%0A]+%0A-----END%20CERTIFICATE-----%0A$/,
	'Auth-SSL-Cert: spaces and line feeds escaped, final line feed kept');
my @order = $raw =~ /^(Auth-SSL[\w-]*):/mg;
is("@order", 'Auth-SSL Auth-SSL-Protocol Auth-SSL-Cipher Auth-SSL-Verify '
	. 'Auth-SSL-Subject Auth-SSL-Issuer Auth-SSL-Serial Auth-SSL-Fingerprint '
	. 'Auth-SSL-Cert', 'the Auth-SSL headers in nginx order');

# --- ssl_trusted_certificate vs ssl_client_certificate ------------------------------------

# What `openssl s_client` says about the CertificateRequest: the whole
# output, and the CA names listed (undef when there is no list).
sub ca_names {
	my ($port) = @_;
	my $r = $t->run_cmd('openssl', 's_client', '-connect', "127.0.0.1:$port");
	my $out = $r->{stdout} . $r->{stderr};
	my ($names) = $out =~ /^Acceptable client certificate CA names\n(.*?)^(?:Requested|Client Certificate Types|Shared|Peer|---)/ms;
	return ($out, $names);
}

my ($out, $names) = ca_names($t->port(7));
like($out, qr/^No client certificate CA names sent$/m,
	'trusted only: no CA names sent');
ok(!defined $names, 'trusted only: no CA list');

($out, $names) = ca_names($t->port(3));
like($names // '', qr/^\S.*Test Root CA$/m, 'client certificate: the root is named');

($out, $names) = ca_names($t->port(8));
like($names // '', qr/Test Root CA/, 'client + trusted: the root is named');
unlike($names // '', qr/Test Intermediate CA/,
	'client + trusted: the trusted intermediate is not named');

like(imap_login($t->port(7), client_opts('alice')), qr/^a1 OK /,
	'trusted only: a root-issued client logs in');
$req = last_auth();
is($req->{h}{'auth-ssl-verify'}, 'SUCCESS', 'trusted only: verified against it');
is($req->{h}{'auth-ssl-serial'}, '1234', 'trusted only: Auth-SSL-Serial');
ok(!exists $req->{h}{'auth-ssl-cert'},
	'auth_http_pass_client_cert off: no Auth-SSL-Cert');

# the intermediate from ssl_trusted_certificate completes bob's chain
like(imap_login($t->port(8), client_opts('bob')), qr/^a1 OK /,
	'client + trusted: bob without his chain logs in');
is(last_auth()->{h}{'auth-ssl-verify'}, 'SUCCESS',
	'client + trusted: the trusted intermediate completes the chain');
is(last_auth()->{h}{'auth-ssl-issuer'}, 'CN=Test Intermediate CA,O=Postern Test',
	'client + trusted: Auth-SSL-Issuer');

# --- optional_no_ca with a self-signed client ------------------------------------------

like(smtp_login($t->port(9), client_opts('mallory')), qr/^235 /,
	'optional_no_ca: a self-signed client authenticates over smtp');
%want = expected_headers('mallory');
$req = last_auth();
like($req->{h}{'auth-ssl-verify'}, qr/^FAILED:self[- ]signed certificate$/,
	'optional_no_ca: Auth-SSL-Verify FAILED');
is($req->{h}{'auth-protocol'}, 'smtp', 'optional_no_ca: smtp request');
is($req->{h}{'auth-ssl-subject'}, 'CN=mallory,O=Elsewhere',
	'optional_no_ca: Auth-SSL-Subject');
is($req->{h}{'auth-ssl-issuer'}, 'CN=mallory,O=Elsewhere',
	'optional_no_ca: Auth-SSL-Issuer of a self-signed certificate');
like($req->{h}{'auth-ssl-serial'} // '', qr/^[0-9A-F]+$/,
	'optional_no_ca: Auth-SSL-Serial');
is($req->{h}{'auth-ssl-fingerprint'}, $want{fingerprint},
	'optional_no_ca: Auth-SSL-Fingerprint');
is($req->{h}{'auth-ssl-cert'}, $want{cert}, 'optional_no_ca: Auth-SSL-Cert');

# a client issued by a CA the server does not know at all is let through too
like(smtp_login($t->port(9), client_opts('bob')), qr/^235 /,
	'optional_no_ca: an unknown issuer authenticates');
like(last_auth()->{h}{'auth-ssl-verify'},
	qr/^FAILED:unable to (?:get local issuer certificate|verify the first certificate)$/,
	'optional_no_ca: unknown issuer FAILED');

# --- session cache -----------------------------------------------------------------------

# A client context that keeps its sessions, with a certificate.
sub session_ctx {
	my ($who) = @_;
	return IO::Socket::SSL::SSL_Context->new(client_opts($who),
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_session_cache_size => 16);
}

# Connects with $ctx: (first reply line, whether the session was resumed).
sub cached_connect {
	my ($ctx) = @_;
	my $s = Test::Postern::IMAP->new(port => $t->port(15), SSL => 1,
		SSL_reuse_ctx => $ctx);
	my $line = $s->getline // '';
	my $resumed = $s->socket->get_session_reused ? 1 : 0;
	# to EOF: a TLSv1.3 session arrives after the handshake
	while (defined $s->getline) { }
	$s->close;
	return ($line, $resumed);
}

my $ctx = session_ctx('alice');
my $s = Test::Postern::IMAP->new(port => $t->port(15), SSL => 1,
	SSL_reuse_ctx => $ctx);
$s->getline;
$s->close;
$s = Test::Postern::IMAP->new(port => $t->port(15), SSL => 1,
	SSL_reuse_ctx => $ctx);
like($s->getline // '', qr/^\* OK /, 'session cache: a good client is served');
ok($s->socket->get_session_reused, 'session cache: a good client resumes');
$s->close;

$ctx = session_ctx('carol');
my ($line, $resumed) = cached_connect($ctx);
is($line, "* BYE SSL certificate error\r\n", 'session cache: revoked refused');
($line, $resumed) = cached_connect($ctx);
is($line, "* BYE SSL certificate error\r\n", 'session cache: refused again');
is($resumed, 0, 'session cache: the refused session was not kept');

# --- no verification --------------------------------------------------------------------

like(imap_login($t->port(14), client_opts('alice')), qr/^a1 OK /,
	'no verification: login');
$req = last_auth();
is($req->{h}{'auth-ssl'}, 'on', 'no verification: Auth-SSL');
my @ssl = sort grep { /^auth-ssl/ } keys %{$req->{h}};
is("@ssl", 'auth-ssl auth-ssl-cipher auth-ssl-protocol',
	'no verification: no certificate headers');

$t->stop();
