#!/usr/bin/perl

# Every source of certificates and keys serving a real handshake: PEM
# files, a chain in the certificate file, data: values, an encrypted key
# with ssl_password_file (a regular file and a named pipe), store: keys,
# RSA and ECDSA certificates together, and engine: keys held by SoftHSM2
# in workers that dropped privileges.  The config-time errors (missing
# key, wrong pass phrase, key mismatch) are in mail_ssl_config.t.  Runs
# against nginx, or Postern with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(mkfifo);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::IMAP;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
$t->plan(19);

my $dir = $t->testdir;
my $nginx = Test::Postern::is_nginx();

sub write_text {
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "$path: $!\n";
	print $fh $text;
	close $fh;
}

sub slurp {
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!\n";
	local $/;
	return scalar <$fh>;
}

# A root CA, an intermediate CA, and leaves issued by the intermediate
# with their own names (CN) and 127.0.0.1 as subject alternative name.
write_text("$dir/ca.ext", "basicConstraints=critical,CA:true\n"
	. "keyUsage=critical,keyCertSign,cRLSign\n");
write_text("$dir/leaf.ext", "basicConstraints=CA:false\n"
	. "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
$t->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj/, '/CN=Keys Root',
	'-keyout', "$dir/root.key", '-out', "$dir/root.pem");
$t->openssl(qw/req -newkey rsa:2048 -nodes -subj/, '/CN=Keys Intermediate',
	'-keyout', "$dir/inter.key", '-out', "$dir/inter.csr");
$t->openssl(qw/x509 -req -days 2 -set_serial 2/, '-in', "$dir/inter.csr",
	'-CA', "$dir/root.pem", '-CAkey', "$dir/root.key",
	'-extfile', "$dir/ca.ext", '-out', "$dir/inter.pem");

my $serial = 10;
sub leaf {
	my ($name, $alg) = @_;
	my @key = $alg eq 'ec'
		? ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1')
		: ('-newkey', 'rsa:2048');
	$t->openssl('req', @key, '-nodes', '-subj', "/CN=$name",
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
	$t->openssl(qw/x509 -req -days 2 -set_serial/, $serial++,
		'-in', "$dir/$name.csr", '-CA', "$dir/inter.pem",
		'-CAkey', "$dir/inter.key", '-extfile', "$dir/leaf.ext",
		'-out', "$dir/$name.pem");
	# the certificate followed by its issuer
	write_text("$dir/$name.chain.pem",
		slurp("$dir/$name.pem") . slurp("$dir/inter.pem"));
}

leaf('rsa.test', 'rsa');
leaf('ec.test', 'ec');
write_text("$dir/both.pem", slurp("$dir/root.pem") . slurp("$dir/inter.pem"));

# The RSA key encrypted; the pass phrase on the second line of the file.
$t->openssl('pkey', '-in', "$dir/rsa.test.key", '-aes256', '-passout', 'pass:right',
	'-out', "$dir/enc.key");
write_text("$dir/pass.txt", "wrong\nright\n");

# The password file as a named pipe, written by a child as often as read.
mkfifo("$dir/pass.fifo", 0600) or die "mkfifo: $!\n";
$t->run_daemon(sub {
	while (1) {
		open my $fh, '>', "$dir/pass.fifo" or die "fifo: $!\n";
		print $fh "wrong\nright\n";
		close $fh;
		select undef, undef, undef, 0.1;
	}
});

(my $data_cert = slurp("$dir/rsa.test.chain.pem")) =~ s/\n+\z//;
(my $data_key = slurp("$dir/rsa.test.key")) =~ s/\n+\z//;

my $conf = <<"EOF";
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;

    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_certificate rsa.test.pem;
        ssl_certificate_key rsa.test.key;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol imap;
        ssl_certificate rsa.test.chain.pem;
        ssl_certificate_key rsa.test.key;
    }
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        protocol imap;
        ssl_certificate "data:$data_cert";
        ssl_certificate_key "data:$data_key";
    }
    server {
        listen 127.0.0.1:%%PORT_3%% ssl;
        protocol imap;
        ssl_certificate rsa.test.chain.pem;
        ssl_certificate_key enc.key;
        ssl_password_file pass.txt;
    }
    server {
        listen 127.0.0.1:%%PORT_4%% ssl;
        protocol imap;
        ssl_certificate rsa.test.chain.pem;
        ssl_certificate_key enc.key;
        ssl_password_file pass.fifo;
    }
    server {
        listen 127.0.0.1:%%PORT_5%% ssl;
        protocol imap;
        ssl_certificate rsa.test.chain.pem;
        ssl_certificate_key rsa.test.key;
        ssl_certificate ec.test.chain.pem;
        ssl_certificate_key ec.test.key;
        # nginx 1.22's default lacks TLSv1.3
        ssl_protocols TLSv1.2 TLSv1.3;
    }
}
EOF
$t->write_file_expand('postern.conf', $conf);
$t->run();

# A handshake verifying the server against $ca; returns the subject's CN
# and the greeting, or the error.
sub serve {
	my ($port, $ca, %opts) = @_;
	my $s = eval {
		Test::Postern::IMAP->new(port => $port, SSL => 1,
			SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER(),
			SSL_ca_file => $ca, SSL_verifycn_scheme => 'default',
			SSL_verifycn_name => '127.0.0.1', %opts);
	} or return "error: $@";
	my $cn = $s->socket->peer_certificate('commonName');
	my $greeting = $s->getline // '';
	$s->close;
	return "$cn $greeting";
}

my $ok = "rsa.test * OK IMAP4 ready\r\n";
my ($root, $both) = ("$dir/root.pem", "$dir/both.pem");

is(serve($t->port(0), $both), $ok, 'pem files: verified handshake');
like(serve($t->port(0), $root), qr/^error: .*verify failed/i,
	'pem files: without the intermediate the root alone does not verify');
is(serve($t->port(1), $root), $ok, 'chain in the certificate file: verified against the root');
is(serve($t->port(2), $root), $ok, 'data: certificate chain and key');
is(serve($t->port(3), $root), $ok, 'encrypted key, second pass phrase of the file');
is(serve($t->port(4), $root), $ok, 'encrypted key, password file is a named pipe');

# RSA and ECDSA together: what the client can verify decides.
my $tls12 = { SSL_version => 'TLSv1_2' };
is(serve($t->port(5), $root, %$tls12, SSL_cipher_list => 'ECDHE-ECDSA-AES128-GCM-SHA256'),
	"ec.test * OK IMAP4 ready\r\n", 'rsa + ecdsa: an ECDSA-only TLSv1.2 client gets ECDSA');
is(serve($t->port(5), $root, %$tls12, SSL_cipher_list => 'ECDHE-RSA-AES128-GCM-SHA256'),
	$ok, 'rsa + ecdsa: an RSA-only TLSv1.2 client gets RSA');

# TLSv1.3: by signature algorithms (openssl s_client -sigalgs)
sub s_client_cn {
	my ($port, @args) = @_;
	my $r = $t->run_cmd('openssl', 's_client', '-connect', "127.0.0.1:$port",
		'-CAfile', $root, '-verify_return_error', @args);
	my ($cn) = $r->{stdout} =~ /^subject=.*CN\s*=\s*(\S+)/m;
	my ($verify) = $r->{stdout} =~ /^Verify return code: (\d+)/m;
	Test::More::diag($r->{stdout} . $r->{stderr}) unless defined $cn;
	return ($cn // 'none') . ' ' . ($verify // 'none');
}
is(s_client_cn($t->port(5), '-tls1_3', '-sigalgs', 'ECDSA+SHA256'), 'ec.test 0',
	'rsa + ecdsa: TLSv1.3 client with ECDSA sigalgs gets ECDSA');
is(s_client_cn($t->port(5), '-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256'), 'rsa.test 0',
	'rsa + ecdsa: TLSv1.3 client with RSA-PSS sigalgs gets RSA');
$t->stop();

# --- store: key, only the second pass phrase works ------------------------------

# nginx 1.22 has no store: keys (it takes "store:file:..." for a file name);
# mainline tries only the first pass phrase for them (a defect Postern must
# not copy): Postern serves with the second.
{
	my $t2 = Test::Postern->new();
	my $d2 = $t2->testdir;
	write_text("$d2/pass.txt", "wrong\nright\n");
	$t2->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_certificate $dir/rsa.test.chain.pem;
        ssl_certificate_key store:file:$dir/enc.key;
        ssl_password_file pass.txt;
    }
}
EOF
	if ($nginx && Test::Postern::Mail::nginx_older_than('1.27.0')) {
		my $r = $t2->run_binary('-p', "$d2/", '-c', 'postern.conf',
			'-e', 'error.log', '-t');
		like($r->{stderr}, qr/\[emerg\] cannot load certificate key "\S*store:file:\Q$dir\E\/enc.key": BIO_new_file\(\) failed/,
			'store: not known to nginx 1.22 (a file name to it)');
		ok($r->{status} != 0, 'store: nginx 1.22 -t fails');
	} else {
		$t2->run();
		is(serve($t2->port(0), $root), $ok, 'store: encrypted key, second pass phrase');
		my $r = $t2->run_binary('-p', "$d2/", '-c', 'postern.conf',
			'-e', 'error.log', '-t');
		like($r->{stderr}, qr/test is successful/, 'store: -t passes');
		$t2->stop();
	}
}

# --- engine: a key held by SoftHSM2, workers as nobody ------------------------------

SKIP: {
	my @so = grep { -e } map { "/usr/lib/x86_64-linux-gnu/engines-3/$_" }
		qw/pkcs11.so libpkcs11.so/;
	my ($module) = grep { -e } '/usr/lib/softhsm/libsofthsm2.so',
		'/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so';
	skip 'no softhsm2-util, pkcs11 engine or SoftHSM2 module', 7
		unless $t->has_prog('softhsm2-util') && $t->has_prog('pkcs11-tool')
		&& @so && $module;
	skip 'workers drop privileges only when started as root', 7 if $> != 0;

	my $t3 = Test::Postern->new();
	my $d3 = $t3->testdir;
	# the token store, readable by the workers running as nobody
	mkdir "$d3/tokens" or die;
	write_text("$d3/softhsm2.conf", "directories.tokendir = $d3/tokens\n"
		. "objectstore.backend = file\nlog.level = ERROR\n");
	local $ENV{SOFTHSM2_CONF} = "$d3/softhsm2.conf";
	my $r = $t3->run_cmd('softhsm2-util', '--init-token', '--free',
		'--label', 'postern', '--pin', '1234', '--so-pin', '5678');
	die "init-token: $r->{stdout}$r->{stderr}" if $r->{status};
	$t->openssl('pkcs8', '-topk8', '-nocrypt', '-in', "$dir/ec.test.key",
		'-out', "$d3/ec.p8");
	$r = $t3->run_cmd('softhsm2-util', '--import', "$d3/ec.p8", '--token', 'postern',
		'--label', 'mailkey', '--id', 'a1b2', '--pin', '1234');
	die "import: $r->{stdout}$r->{stderr}" if $r->{status};
	system('chown', '-R', 'nobody', "$d3/tokens") == 0 or die "chown\n";
	system('chmod', '-R', 'u+rwX,go+rX', "$d3/tokens") == 0 or die "chmod\n";

	# The engine finds SoftHSM2 through OpenSSL's config (which the master
	# reads, as nginx does), and SoftHSM2 its tokens through SOFTHSM2_CONF,
	# kept for the workers with "env".
	write_text("$d3/openssl.cnf", <<"EOF");
openssl_conf = conf_main
[conf_main]
engines = engines_sect
[engines_sect]
pkcs11 = pkcs11_sect
[pkcs11_sect]
engine_id = pkcs11
dynamic_path = $so[0]
MODULE_PATH = $module
init = 1
EOF
	local $ENV{OPENSSL_CONF} = "$d3/openssl.cnf";

	$t3->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
user nobody nogroup;
worker_processes 2;
env SOFTHSM2_CONF;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_certificate $dir/ec.test.chain.pem;
        ssl_certificate_key "engine:pkcs11:pkcs11:token=postern;object=mailkey;type=private;pin-value=1234";
    }
}
EOF
	$r = $t3->run_binary('-p', "$d3/", '-c', 'postern.conf', '-e', 'error.log', '-t');
	like($r->{stderr}, qr/test is successful/, 'engine: -t loads the key from the token')
		or diag($r->{stderr});
	$t3->run();
	ok($t3->wait_workers(2), 'engine: two workers');
	my @users = map { (stat "/proc/$_")[4] } $t3->worker_pids;
	my $nobody = getpwnam('nobody');
	is(scalar(grep { $_ == $nobody } @users), 2, 'engine: workers run as nobody');

	# enough connections for both workers to serve some
	my %served;
	for my $i (1 .. 12) {
		my $got = serve($t3->port(0), $root);
		$served{$got}++;
	}
	my $want = "ec.test * OK IMAP4 ready\r\n";
	is(join(',', keys %served), $want,
		'engine: handshakes in workers as nobody signed with the token\'s key');

	# new workers forked by a reload serve as well
	ok($t3->reload, 'engine: reload');
	%served = ();
	$served{serve($t3->port(0), $root)}++ for 1 .. 6;
	is(join(',', keys %served), $want, 'engine: workers after a reload serve');
	my $log = $t3->read_file('error.log') // '';
	unlike($log, qr/\[(?:alert|emerg|crit)\]/, 'engine: no errors in the log')
		or diag($log);
	$t3->stop();
}
