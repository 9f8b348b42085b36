#!/usr/bin/perl

# TLS configuration errors found while building a server's TLS context:
# certificates, keys (files, data:, pass phrases), ciphers, curves,
# dhparam, as printed by `-t`.  The expectations were taken from stock
# nginx (the OpenSSL error queue is the system OpenSSL 3's); where
# Debian's nginx 1.22 and mainline differ, a case carries both.  An
# encrypted key without ssl_password_file is not here on purpose: nginx
# then prompts on the terminal, Postern never does.  Postern
# checks contexts in `-t` once the TLS module is wired into the command
# line: set TEST_POSTERN_TLS=1 to run these against it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern;

my $nginx = Test::Postern::is_nginx();
plan(skip_all => 'TLS contexts are checked by -t only with TEST_POSTERN_TLS=1')
	unless $nginx || $ENV{TEST_POSTERN_TLS};

my $t = Test::Postern->new()->has_prog('openssl') ? Test::Postern->new()
	: plan(skip_all => 'no openssl');
$t->plan(14);

my $dir = $t->testdir;
my $conf = "$dir/postern.conf";
my $name = Test::Postern::binary_name();

sub openssl {
	my $cmd = join ' ', 'openssl', @_;
	system("$cmd >/dev/null 2>&1") == 0 or die "$cmd failed";
}

# A server certificate with its key, another key, the same key encrypted.
openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj \/CN=mail.test/,
	"-keyout $dir/server.key -out $dir/server.pem");
openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $dir/other.key");
openssl("pkey -in $dir/server.key -aes256 -passout pass:s3cret -out $dir/enc.key");
$t->write_file('wrong.pass', "first\nsecond\n");
$t->write_file('right.pass', "first\ns3cret\n");
$t->write_file('short.key', 'x' x 47);
$t->write_file('ticket.key', 'x' x 80);

sub M {
	my ($server) = @_;
	return <<"EOF";
events { }
mail {
    auth_http 127.0.0.1:8080/auth;
    server {
        listen 127.0.0.1:8993 ssl;
        protocol imap;
        $server
    }
}
EOF
}

my $E = '[emerg]';
my $W = '[warn]';
my $cert = "ssl_certificate $dir/server.pem;";
my $key = "ssl_certificate_key $dir/server.key;";
my $nofile = 'BIO_new_file() failed (SSL: error:80000002:system library::'
	. 'No such file or directory:calling fopen(%%FILE%%, r) '
	. 'error:10000080:BIO routines::no such file)';

sub fails { return [@_, 'configuration file %%CONF%% test failed'] }
sub passes {
	return [@_, 'the configuration file %%CONF%% syntax is ok',
		'configuration file %%CONF%% test is successful'];
}

sub nofile {
	my ($what, $file) = @_;
	(my $tail = $nofile) =~ s/%%FILE%%/$file/;
	return qq|$E $what "$file": $tail|;
}

my @cases = (
	['certificate and key', M("$cert $key"), passes()],
	['missing certificate', M("ssl_certificate $dir/none.pem; $key"),
		fails(nofile('cannot load certificate', "$dir/none.pem"))],
	['missing key', M("$cert ssl_certificate_key $dir/none.key;"),
		fails(nofile('cannot load certificate key', "$dir/none.key"))],
	['key of another certificate', M("$cert ssl_certificate_key $dir/other.key;"),
		fails(qq|$E SSL_CTX_use_PrivateKey("$dir/other.key") failed |
			. '(SSL: error:05800074:x509 certificate routines::key values mismatch)')],
	['data: key that is not a key', M("$cert ssl_certificate_key data:xx;"),
		fails(qq|$E cannot load certificate key "data:xx": PEM_read_bio_PrivateKey() failed |
			. '(SSL: error:1E08010C:DECODER routines::unsupported:'
			. 'No supported data to decode. Input type: PEM)')],
	['encrypted key, wrong pass phrases',
		M("$cert ssl_certificate_key $dir/enc.key; ssl_password_file wrong.pass;"),
		fails(qq|$E cannot load certificate key "$dir/enc.key": PEM_read_bio_PrivateKey() failed |
			. '(SSL: error:1C800064:Provider routines::bad decrypt '
			. 'error:11800074:PKCS12 routines::pkcs12 cipherfinal error:maybe wrong password '
			. 'error:1C800064:Provider routines::bad decrypt '
			. 'error:11800074:PKCS12 routines::pkcs12 cipherfinal error:maybe wrong password)')],
	['encrypted key, second pass phrase',
		M("$cert ssl_certificate_key $dir/enc.key; ssl_password_file right.pass;"),
		passes()],
	['unknown cipher', M("$cert $key ssl_ciphers FOO;"),
		fails(qq|$E SSL_CTX_set_cipher_list("FOO") failed |
			. '(SSL: error:0A0000B9:SSL routines::no cipher match)')],
	['unknown curve', M("$cert $key ssl_ecdh_curve bogus;"),
		fails(qq|$E SSL_CTX_set1_curves_list("bogus") failed |
			. "(SSL: error:0A080106:SSL routines::passed invalid argument:group 'bogus' cannot be set)")],
	# located at the end of mail {}, where nginx builds the contexts
	['ticket key of a wrong size', M("$cert $key ssl_session_ticket_key $dir/short.key;"),
		fails(qq|$E "$dir/short.key" must be 48 or 80 bytes in %%CONF%%:9|)],
	['ticket key', M("$cert $key ssl_session_ticket_key $dir/ticket.key;"), passes()],
	['curve list', M("$cert $key ssl_ecdh_curve prime256v1:secp384r1;"), passes()],
	['missing dhparam', M("$cert $key ssl_dhparam $dir/none.dh;"),
		fails(qq|$E BIO_new_file("$dir/none.dh") failed (SSL: error:80000002:system library::|
			. "No such file or directory:calling fopen($dir/none.dh, r) "
			. 'error:10000080:BIO routines::no such file)')],
	['missing CRL', M("$cert $key ssl_verify_client on; "
			. "ssl_client_certificate $dir/server.pem; ssl_crl $dir/none.crl;"),
		# nginx 1.22 read CRLs with X509_LOOKUP_load_file(); mainline
		# (and Postern) read them as other PEM files.
		fails(qq|$E X509_LOOKUP_load_file("$dir/none.crl") failed (SSL: error:80000002:system library::|
			. "No such file or directory:calling fopen($dir/none.crl, r) "
			. 'error:10000080:BIO routines::no such file '
			. 'error:05880002:x509 certificate routines::system lib)'),
		fails(nofile('cannot load CRL', "$dir/none.crl"))],
);

for my $case (@cases) {
	my ($title, $text, $expect, $mainline) = @$case;
	$expect = $mainline if $mainline && !$nginx;
	my @args;
	push @args, '-g', "pid $dir/test.pid;" if $nginx;
	$t->write_file_expand('postern.conf', $text);

	my $r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf',
		'-e', 'error.log', '-t', @args);

	my $want = join '', map { "$name: $_\n" } @$expect;
	$want =~ s/%%CONF%%/$conf/g;
	my $failed = grep { /test failed/ } @$expect;

	is($r->{stderr} . ($r->{status} >> 8 == ($failed ? 1 : 0) ? ''
		: "(exit status " . ($r->{status} >> 8) . ")\n"), $want, $title);
}
