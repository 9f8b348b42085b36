#!/usr/bin/perl

# TLS protocol settings on an implicit-TLS IMAP listener: ssl_protocols
# (toggles, the default, the old names), ssl_ciphers,
# ssl_prefer_server_ciphers, ssl_ecdh_curve, ssl_dhparam, ssl_conf_command,
# ssl_certificate_compression, and what auth_http receives in
# Auth-SSL-Protocol and Auth-SSL-Cipher.  Clients: IO::Socket::SSL and
# `openssl s_client`.  Like mail_clients.t this needs mail sessions: it
# runs against nginx, or Postern with TEST_POSTERN_MAIL=1.
#
# Debian's nginx 1.22.1 differs from the mainline nginx Postern follows:
# - the mail module's default ssl_protocols was "TLSv1 TLSv1.1 TLSv1.2"
#   until 1.23.4 (TLSv1.3 added) and "TLSv1.2 TLSv1.3" since 1.27.3
#   (TLSv1 and TLSv1.1 removed); Postern has the mainline default;
# - ssl_certificate_compression appeared in 1.29.1: 1.22.1 rejects it as
#   an unknown directive.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern;
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::Mail;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
eval { require IO::Socket::SSL; IO::Socket::SSL->VERSION(2.061); 1 }
	or Test::More::plan(skip_all => 'IO::Socket::SSL too old');
$t->plan(56);

my $dir = $t->testdir;
my $name = Test::Postern::binary_name();
my $nginx = Test::Postern::is_nginx();
# the mail default ssl_protocols before 1.23.4 had no TLSv1.3
my $old_default = Test::Postern::Mail::nginx_older_than('1.23.4');
# ... and before 1.27.3 it still had TLSv1 and TLSv1.1
my $old_tls1_default = Test::Postern::Mail::nginx_older_than('1.27.3');
my $has_compression_directive = !Test::Postern::Mail::nginx_older_than('1.29.1');

$t->self_signed('server');
# DSA-style parameters are generated in a fraction of a second
$t->openssl(qw/dhparam -dsaparam -out/, "$dir/dh.pem", '2048');

# A cipher pair used by the order tests: the client lists AES256 first.
my $aes128 = 'ECDHE-RSA-AES128-GCM-SHA256';
my $aes256 = 'ECDHE-RSA-AES256-GCM-SHA384';
my $dhe = 'DHE-RSA-AES128-GCM-SHA256';

my $compression = $has_compression_directive
	? 'ssl_certificate_compression on;' : '';

$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
events { }
mail {
    auth_http 127.0.0.1:%%PORT_20%%/auth;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    xclient off;

    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol imap;
        ssl_protocols TLSv1.3;
    }
    # every default
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        protocol imap;
    }
    # TLSv1 needs security level 0 on OpenSSL 3 (SHA-1 in its PRF)
    server {
        listen 127.0.0.1:%%PORT_3%% ssl;
        protocol imap;
        ssl_protocols SSLv3 TLSv1;
        ssl_ciphers DEFAULT:\@SECLEVEL=0;
    }
    server {
        listen 127.0.0.1:%%PORT_4%% ssl;
        protocol imap;
        ssl_ciphers DEFAULT:\@SECLEVEL=0;
    }
    server {
        listen 127.0.0.1:%%PORT_5%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $aes128;
    }
    server {
        listen 127.0.0.1:%%PORT_6%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $aes128:$aes256;
        ssl_prefer_server_ciphers on;
    }
    server {
        listen 127.0.0.1:%%PORT_7%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $aes128:$aes256;
        ssl_prefer_server_ciphers off;
    }
    # the curve tests set ssl_protocols: 1.22.1's default has no TLSv1.3
    server {
        listen 127.0.0.1:%%PORT_8%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve prime256v1;
    }
    server {
        listen 127.0.0.1:%%PORT_9%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve secp384r1:X25519;
    }
    server {
        listen 127.0.0.1:%%PORT_15%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve auto;
    }
    server {
        listen 127.0.0.1:%%PORT_10%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $dhe:$aes128;
    }
    server {
        listen 127.0.0.1:%%PORT_11%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $dhe:$aes128;
        ssl_dhparam dh.pem;
    }
    server {
        listen 127.0.0.1:%%PORT_12%% ssl;
        protocol imap;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    }
    server {
        listen 127.0.0.1:%%PORT_13%% ssl;
        protocol imap;
        ssl_protocols TLSv1.2;
        ssl_ciphers $aes128:$aes256;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Options -ServerPreference;
    }
    # nothing this OpenSSL can do
    server {
        listen 127.0.0.1:%%PORT_16%% ssl;
        protocol imap;
        ssl_protocols SSLv2 SSLv3;
        ssl_ciphers DEFAULT:\@SECLEVEL=0;
    }
    server {
        listen 127.0.0.1:%%PORT_14%% ssl;
        protocol imap;
        $compression
    }
}
EOF

my %backend = (imap => $t->port(21));
$t->run_daemon(\&Test::Postern::Daemons::auth_http, $t->port(20), \%backend,
	"$dir/auth.log");
$t->run_daemon(\&Test::Postern::Daemons::imap_backend, $backend{imap});
$t->waitforsocket("127.0.0.1:$_") for $t->port(20), $t->port(21);

$t->run();

# --- clients -------------------------------------------------------------------

# An IMAP client over TLS to server $n that got the greeting, or undef
# (the handshake error is in $@).
sub tls {
	my ($n, %opts) = @_;
	my $s = eval {
		Test::Postern::IMAP->new(port => $t->port($n), SSL => 1, %opts)
	} or return undef;
	my $greeting = $s->getline // '';
	return $s if $greeting =~ /^\* OK /;
	$@ = "no greeting after the handshake: $greeting";
	return undef;
}

# "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256" as the client sees it, or "failed".
sub negotiated {
	my $s = tls(@_) or return 'failed';
	# IO::Socket::SSL says TLSv1_2 where OpenSSL and auth_http say TLSv1.2
	(my $r = $s->socket->get_sslversion) =~ tr/_/./;
	$r .= ' ' . $s->socket->get_cipher;
	$s->close;
	return $r;
}

sub version { (negotiated(@_) =~ /^(\S+)/)[0] }

# The last auth_http request's headers after a LOGIN through server $n.
sub auth_after_login {
	my ($n, %opts) = @_;
	my $s = tls($n, %opts) or return { error => $@ };
	$s->cmd('LOGIN alice secret');
	my $reply = join '', $s->read_tagged;
	$s->close;
	return { error => "login: $reply" } unless $reply =~ /OK/;
	my @req = split /\r\n\r\n/, $t->read_file('auth.log') // '';
	my %h;
	$h{$1} = $2 while ($req[-1] // '') =~ /^([\w-]+): (.*?)\r?$/mg;
	return \%h;
}

# `openssl s_client` against server $n: its "Protocol version",
# "Ciphersuite" and "Server Temp Key" lines, or "failed".
sub s_client {
	my ($n, @args) = @_;
	my $r = $t->run_cmd('openssl', 's_client', '-brief',
		'-connect', '127.0.0.1:' . $t->port($n), @args);
	my $out = $r->{stdout} . $r->{stderr};
	return 'failed' unless $out =~ /CONNECTION ESTABLISHED/;
	my ($v) = $out =~ /^Protocol version: (\S+)/m;
	my ($c) = $out =~ /^Ciphersuite: (\S+)/m;
	my ($k) = $out =~ /^(?:Server|Peer) Temp Key: (?:ECDH, )?([^,\s]+)/m;
	return join ' ', $v // '?', $c // '?', $k // '?';
}

my %v12 = (SSL_version => 'TLSv1_2');
my %v13 = (SSL_version => 'TLSv1_3');
# an OpenSSL 3 client needs security level 0 to offer TLSv1 or TLSv1.1
my %v10 = (SSL_version => 'TLSv1', SSL_cipher_list => 'DEFAULT:@SECLEVEL=0');
my %v11 = (SSL_version => 'TLSv1_1', SSL_cipher_list => 'DEFAULT:@SECLEVEL=0');

# --- ssl_protocols ----------------------------------------------------------------

is(version(0, %v12), 'TLSv1.2', 'TLSv1.2 only: a TLSv1.2 client');
is(version(0, %v13), 'failed', 'TLSv1.2 only: a TLSv1.3 client fails');
is(version(0), 'TLSv1.2', 'TLSv1.2 only: a client of both gets TLSv1.2');
is(version(1, %v13), 'TLSv1.3', 'TLSv1.3 only: a TLSv1.3 client');
is(version(1, %v12), 'failed', 'TLSv1.3 only: a TLSv1.2 client fails');

is(version(2, %v12), 'TLSv1.2', 'default: TLSv1.2');
is(version(2), $old_default ? 'TLSv1.2' : 'TLSv1.3',
	'default: TLSv1.3 (not before nginx 1.23.4)');
is(version(4, %v11), $old_tls1_default ? 'TLSv1.1' : 'failed',
	'default: no TLSv1.1 (since nginx 1.27.3)');
is(version(4, %v10), $old_tls1_default ? 'TLSv1' : 'failed',
	'default: no TLSv1 (since nginx 1.27.3)');

# old names: SSLv3 is accepted (this OpenSSL has no SSLv3, so it only
# does nothing), TLSv1 works
is(version(3, %v10), 'TLSv1', 'SSLv3 TLSv1: a TLSv1 client');
is(version(3, %v12), 'failed', 'SSLv3 TLSv1: a TLSv1.2 client fails');
like(s_client(3, '-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0'), qr/^TLSv1 /,
	's_client -tls1');
is(s_client(3, '-tls1_3'), 'failed', 's_client -tls1_3 fails');
is(version(16, %v12), 'failed', 'SSLv2 SSLv3: a TLSv1.2 client fails');
is(version(16, %v13), 'failed', 'SSLv2 SSLv3: a TLSv1.3 client fails');
is(version(16, %v10), 'failed', 'SSLv2 SSLv3: a TLSv1 client fails');
is(s_client(16, '-cipher', 'DEFAULT:@SECLEVEL=0'), 'failed', 'SSLv2 SSLv3: s_client fails');
is(s_client(0, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'), 'failed',
	's_client -tls1_1 to TLSv1.2 only fails');

is(auth_after_login(0)->{'Auth-SSL-Protocol'}, 'TLSv1.2', 'Auth-SSL-Protocol TLSv1.2');
is(auth_after_login(1)->{'Auth-SSL-Protocol'}, 'TLSv1.3', 'Auth-SSL-Protocol TLSv1.3');
is(auth_after_login(3, %v10)->{'Auth-SSL-Protocol'}, 'TLSv1', 'Auth-SSL-Protocol TLSv1');

# --- ssl_ciphers -----------------------------------------------------------------

is(negotiated(5, SSL_cipher_list => $aes256), 'failed', 'a cipher not in the list fails');
is(negotiated(5, SSL_cipher_list => "$aes256:$aes128"), "TLSv1.2 $aes128",
	'the cipher in the list');
my $h = auth_after_login(5, SSL_cipher_list => $aes128);
is($h->{'Auth-SSL-Cipher'}, $aes128, 'Auth-SSL-Cipher TLSv1.2');
is($h->{'Auth-SSL-Protocol'}, 'TLSv1.2', 'Auth-SSL-Protocol with the cipher');
is(auth_after_login(1, SSL_ciphersuites => 'TLS_CHACHA20_POLY1305_SHA256')
	->{'Auth-SSL-Cipher'}, 'TLS_CHACHA20_POLY1305_SHA256', 'Auth-SSL-Cipher TLSv1.3');

# --- ssl_prefer_server_ciphers -----------------------------------------------------

is(negotiated(6, SSL_cipher_list => "$aes256:$aes128"), "TLSv1.2 $aes128",
	'prefer on: the server order');
is(negotiated(7, SSL_cipher_list => "$aes256:$aes128"), "TLSv1.2 $aes256",
	'prefer off: the client order');
is(negotiated(7, SSL_cipher_list => "$aes128:$aes256"), "TLSv1.2 $aes128",
	'prefer off: the client order, other way round');
# the default list, HIGH:!aNULL:!MD5, has AES256 before AES128
is(negotiated(2, %v12, SSL_cipher_list => "$aes128:$aes256"), "TLSv1.2 $aes128",
	'prefer off by default');

# --- ssl_conf_command -------------------------------------------------------------

is(negotiated(12), 'TLSv1.3 TLS_AES_128_GCM_SHA256', 'conf_command Ciphersuites');
is(negotiated(12, SSL_ciphersuites => 'TLS_AES_256_GCM_SHA384'), 'failed',
	'conf_command Ciphersuites: another suite fails');
is(negotiated(15, %v13), 'TLSv1.3 TLS_AES_256_GCM_SHA384', 'without it: the client first');
is(negotiated(13, SSL_cipher_list => "$aes256:$aes128"), "TLSv1.2 $aes256",
	'conf_command Options -ServerPreference overrides prefer on');

# --- ssl_ecdh_curve --------------------------------------------------------------

# a TLSv1.2 client offers only ECDHE: it would fall back to RSA key exchange
my %ecdhe12 = (SSL_version => 'TLSv1_2', SSL_cipher_list => 'ECDHE');
is(negotiated(8, %v13, SSL_ecdh_curve => 'X25519'), 'failed',
	'prime256v1: TLSv1.3 X25519 client fails');
is(negotiated(8, %ecdhe12, SSL_ecdh_curve => 'X25519'), 'failed',
	'prime256v1: TLSv1.2 X25519 client fails');
is(negotiated(8, %v13, SSL_ecdh_curve => 'X25519:prime256v1'),
	'TLSv1.3 TLS_AES_256_GCM_SHA384', 'prime256v1: a client of both');
is(s_client(8, '-groups', 'prime256v1'), 'TLSv1.3 TLS_AES_256_GCM_SHA384 prime256v1',
	'prime256v1: s_client with prime256v1');
like(s_client(15, '-groups', 'X25519'), qr/^TLSv1\.3 \S+ X25519$/, 'auto: X25519');
like(s_client(15, '-groups', 'secp384r1'), qr/^TLSv1\.3 \S+ secp384r1$/, 'auto: secp384r1');
like(s_client(15, '-groups', 'prime256v1', '-tls1_2', '-cipher', 'ECDHE'),
	qr/^TLSv1\.2 \S+ prime256v1$/, 'auto: TLSv1.2 prime256v1');
like(s_client(9, '-groups', 'X25519'), qr/^TLSv1\.3 \S+ X25519$/, 'list: X25519');
like(s_client(9, '-groups', 'secp384r1', '-tls1_2', '-cipher', 'ECDHE'),
	qr/^TLSv1\.2 \S+ secp384r1$/, 'list: TLSv1.2 secp384r1');
is(s_client(9, '-groups', 'prime256v1'), 'failed', 'list: a curve not in it fails');
is(s_client(9, '-groups', 'prime256v1', '-tls1_2', '-cipher', 'ECDHE'), 'failed',
	'list: TLSv1.2, a curve not in it fails');

# --- ssl_dhparam -------------------------------------------------------------------

is(negotiated(10, SSL_cipher_list => $dhe), 'failed', 'DHE without dhparam fails');
is(negotiated(10, SSL_cipher_list => "$dhe:$aes128"), "TLSv1.2 $aes128",
	'without dhparam ECDHE is chosen');
is(auth_after_login(11, SSL_cipher_list => $dhe)->{'Auth-SSL-Cipher'}, $dhe,
	'DHE with dhparam');

# --- ssl_certificate_compression ---------------------------------------------------

SKIP: {
skip 'no ssl_certificate_compression before nginx 1.29.1', 2
	unless $has_compression_directive;
like(negotiated(14), qr/^TLSv1\.3 /, 'handshake with compression on');
# OpenSSL 3.0 has no certificate compression (3.2 has): a warning at start
my $warning = '"ssl_certificate_compression" is not supported on this platform, ignored';
like($t->read_file('error.log'), qr/\[warn\] \d+#\d+: \Q$warning\E\n/,
	'compression: warning at start');
}

# --- -t ------------------------------------------------------------------------------

sub config_test {
	my ($server) = @_;
	# for nginx the mail module, on line 1 as in the main config
	my $load = $nginx ? "load_module $Test::Postern::NGINX_MAIL_MODULE; " : '';
	$t->write_file('check.conf', <<"EOF");
${load}events { }
mail {
    auth_http 127.0.0.1:8080/auth;
    server {
        listen 127.0.0.1:8993 ssl;
        protocol imap;
        ssl_certificate $dir/server.pem;
        ssl_certificate_key $dir/server.key;
        $server
    }
}
EOF
	my @args = ('-p', "$dir/", '-c', 'check.conf', '-e', 'check.log', '-t');
	push @args, '-g', "pid $dir/check.pid;" if $nginx;
	my $r = $t->run_binary(@args);
	return $r->{stderr} . "exit " . ($r->{status} >> 8) . "\n";
}

my $ok = "$name: the configuration file $dir/check.conf syntax is ok\n"
	. "$name: configuration file $dir/check.conf test is successful\nexit 0\n";

# every name is accepted, and nginx says nothing about the ones this
# OpenSSL cannot do
is(config_test('ssl_protocols SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;'), $ok,
	'-t: every protocol name');
is(config_test('ssl_protocols SSLv3 TLSv1;'), $ok, '-t: SSLv3 TLSv1');
is(config_test('ssl_protocols TLSv1.4;'),
	qq|$name: [emerg] invalid value "TLSv1.4" in $dir/check.conf:9\n|
	. "$name: configuration file $dir/check.conf test failed\nexit 1\n",
	'-t: an unknown protocol name');
is(config_test('ssl_protocols TLSv1.2 TLSv1.2;'),
	qq|$name: [warn] duplicate value "TLSv1.2" in $dir/check.conf:9\n$ok|,
	'-t: a protocol named twice');
is(config_test('ssl_protocols tlsv1.2 TLSV1.3;'), $ok, '-t: names in any case');
# OpenSSL 3.0 has no certificate compression (3.2 has): nginx warns
is(config_test('ssl_certificate_compression on;'), $has_compression_directive
	? qq|$name: [warn] "ssl_certificate_compression" is not supported on this platform, ignored\n$ok|
	: qq|$name: [emerg] unknown directive "ssl_certificate_compression" in $dir/check.conf:9\n|
	. "$name: configuration file $dir/check.conf test failed\nexit 1\n",
	'-t: ssl_certificate_compression on');

$t->stop();
