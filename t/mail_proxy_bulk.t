#!/usr/bin/perl

# Bulk transfers through the relay, plain and over implicit TLS, both
# ways: everything arrives intact, and a burst that ends exactly on a
# relay buffer boundary arrives at once (the relay writes bulk data with
# MSG_MORE and must push the last segment when the burst ends).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use Test::Postern;
use Test::Postern::Daemons;
use Test::Postern::POP3;

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
eval { require IO::Socket::SSL; 1 }
	or Test::More::plan(skip_all => 'no IO::Socket::SSL');
$t->plan(14);

my $dir = $t->testdir;
$t->self_signed('cert');

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    ssl_certificate cert.pem;
    ssl_certificate_key cert.key;
    proxy_buffer 4k;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol pop3;
    }
}
EOF

my $backend = $t->port(11);
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	"$dir/auth.log", sub { Test::Postern::Daemons::auth_ok($backend) });
$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend, 'pop3',
	"$dir/pop3.log");
$t->run();
$t->waitforsocket('127.0.0.1:' . $t->port(10));
$t->waitforsocket('127.0.0.1:' . $t->port(11));

sub pattern { substr('0123456789abcdef' x (int($_[0] / 16) + 1), 0, $_[0]) }

for my $tls (0, 1) {
	my $how = $tls ? 'tls' : 'plain';
	my $s = Test::Postern::POP3->new(port => $t->port($tls), SSL => $tls,
		timeout => 3);
	$s->read;
	$s->write("USER bulk\r\nPASS pw\r\n");
	$s->check(qr/^\+OK/, "$how: user");
	$s->check(qr/^\+OK/, "$how: logged in");

	# whole multiples of proxy_buffer: the last read fills the buffer and
	# nothing follows it
	for my $n (4096, 8 * 4096) {
		$s->write("EXACT $n\r\n");
		my $t0 = time();
		my $got = $s->read_bytes($n);
		my $took = time() - $t0;
		# a held-back last segment would wait for the kernel's 200 ms
		# timer; relaying it takes well under a millisecond here
		ok(length $got == $n && $took < 0.15,
			"$how: $n bytes ending on a buffer boundary arrive at once")
			or diag(sprintf('got %d bytes in %.3f s', length $got, $took));
	}

	# a large reply, not a multiple
	my $n = 3_000_001;
	$s->write("EXACT $n\r\n");
	my $got = $s->read_bytes($n);
	ok($got eq pattern($n), "$how: $n bytes to the client intact")
		or diag('got ' . length($got) . ' bytes');

	# client to backend, a multiple of every buffer size
	my $up = pattern(1 << 20);
	$s->write('UPLOAD ' . length($up) . "\r\n");
	$s->write($up);
	my $sum = unpack('%32C*', $up);
	$s->check(qr/^GOT 1048576 $sum\r\n\z/, "$how: 1 MB to the backend intact");

	$s->write("BYE\r\n");
	$s->check(qr/^BYE/, "$how: backend closes");
}

$t->stop();
