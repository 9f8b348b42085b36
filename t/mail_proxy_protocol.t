#!/usr/bin/perl

# PROXY protocol: in (v1 and v2 headers from the client, realip with
# set_real_ip_from changing Client-IP, an untrusted source left alone,
# broken headers) and out (proxy_protocol on / v2 to the backend, the
# backend checks the header bytes).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Socket qw(inet_aton);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::POP3;

my $t = Test::Postern->new()->has(qw/mail/)->plan(19);
my $dir = $t->testdir;

# proxy_protocol v2 to backends is in nginx since 1.29.x (mainline)
my $has_v2_out = !Test::Postern::Mail::nginx_older_than('1.29.0');
my $v2_server = $has_v2_out ? <<'EOF' : '';
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol pop3;
        proxy_protocol v2;
    }
EOF

$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;

    server {
        listen 127.0.0.1:%%PORT_0%% proxy_protocol;
        protocol pop3;
        set_real_ip_from 127.0.0.1;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% proxy_protocol;
        protocol pop3;
        set_real_ip_from 10.0.0.0/8;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol pop3;
        proxy_protocol on;
    }
$v2_server
}
EOF

my $backend = $t->port(11);
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	"$dir/auth.log", sub { Test::Postern::Daemons::auth_ok($backend) });
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
sub login {
	my ($s) = @_;
	$s->write("USER u\r\nPASS p\r\n");
	$s->read;
	return $s->read // '';
}
sub backend_proxy_line {
	my $line;
	wait_until(sub {
		my $log = $t->read_file('backend.log');
		$log =~ s/.*connect\n//s;
		($line) = $log =~ /^proxy (.*)$/m;
		return $log =~ /<< PASS/;
	}, 5);
	return $line // '';
}
# CRC-32C (Castagnoli), as in the PROXY protocol v2 CRC32C TLV
sub crc32c {
	my ($data) = @_;
	my $crc = 0xFFFFFFFF;
	for my $byte (unpack 'C*', $data) {
		$crc ^= $byte;
		$crc = $crc & 1 ? ($crc >> 1) ^ 0x82F63B78 : $crc >> 1 for 1 .. 8;
	}
	return ($crc ^ 0xFFFFFFFF) & 0xFFFFFFFF;
}

sub v2_header {
	my ($src, $dst, $sport, $dport) = @_;
	my $addr = inet_aton($src) . inet_aton($dst) . pack('nn', $sport, $dport);
	return "\r\n\r\n\0\r\nQUIT\n" . "\x21\x11" . pack('n', length $addr) . $addr;
}

# --- in: v1 with realip -----------------------------------------------------

my $s = Test::Postern::POP3->new(port => $t->port(0));
$s->write("PROXY TCP4 192.0.2.1 198.51.100.2 40000 110\r\n");
$s->expect("+OK POP3 ready\r\n", 'v1: greeting after the header');
like(login($s), qr/^\+OK backend welcome/, 'v1: logged in');
my $h = next_request();
is($h->{'client-ip'}, '192.0.2.1', 'realip: Client-IP from the header');
is(join(' ', map { $h->{"proxy-protocol-$_"} // '-' } qw/addr port server-addr server-port/),
	'192.0.2.1 40000 198.51.100.2 110', 'Proxy-Protocol-* headers');
$s->close;
ok(wait_until(sub { $t->read_file('error.log')
	=~ /client 192\.0\.2\.1:40000 connected to 127\.0\.0\.1:${\ $t->port(0)}$|client 127\.0\.0\.1:\d+ connected to 127\.0\.0\.1:${\ $t->port(0)}$/m }, 5),
	'connection logged');

# --- in: v2 with realip -----------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(0));
$s->write(v2_header('203.0.113.7', '198.51.100.3', 50000, 995));
$s->expect("+OK POP3 ready\r\n", 'v2: greeting after the header');
like(login($s), qr/^\+OK backend welcome/, 'v2: logged in');
$h = next_request();
is($h->{'client-ip'}, '203.0.113.7', 'v2 realip: Client-IP');
is(join(' ', map { $h->{"proxy-protocol-$_"} // '-' } qw/addr port server-addr server-port/),
	'203.0.113.7 50000 198.51.100.3 995', 'v2: Proxy-Protocol-* headers');
$s->close;

# --- in: untrusted source --------------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(1));
$s->write("PROXY TCP4 192.0.2.9 198.51.100.2 40001 110\r\n");
$s->expect("+OK POP3 ready\r\n", 'untrusted: greeting');
login($s);
$h = next_request();
is($h->{'client-ip'}, '127.0.0.1', 'untrusted source: Client-IP unchanged');
is($h->{'proxy-protocol-addr'}, '192.0.2.9', 'untrusted source: Proxy-Protocol-Addr still sent');
$s->close;

# --- in: broken headers ------------------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(0));
$s->write("PROXY FOO bar\r\nUSER x\r\n");
$s->closed('broken v1 header: closed without a greeting');
ok(wait_until(sub { $t->read_file('error.log')
	=~ /\[error\] .*broken header: "PROXY FOO bar\r?(?:\nUSER x\r?\n?)?" while reading PROXY protocol, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m }, 5),
	'broken header logged');

$s = Test::Postern::POP3->new(port => $t->port(0));
$s->write("USER x\r\n");
$s->closed('no header at all: closed');

# --- out --------------------------------------------------------------------------

$s = Test::Postern::POP3->new(port => $t->port(2));
$s->read;
my $local_port = $s->socket->sockport;
like(login($s), qr/^\+OK backend welcome/, 'proxy_protocol on: logged in');
is(backend_proxy_line(), "v1 PROXY TCP4 127.0.0.1 127.0.0.1 $local_port " . $t->port(2),
	'proxy_protocol on: v1 header to the backend');
$s->close;

SKIP: {
	skip 'proxy_protocol v2 to backends needs nginx 1.29', 2 unless $has_v2_out;

	$s = Test::Postern::POP3->new(port => $t->port(3));
	$s->read;
	$local_port = $s->socket->sockport;
	like(login($s), qr/^\+OK backend welcome/, 'proxy_protocol v2: logged in');
	# nginx 1.31.5 ends the header with a CRC32C TLV over the whole header
	# (checksum field zeroed while computing)
	my $expect = v2_header('127.0.0.1', '127.0.0.1', $local_port, $t->port(3));
	substr($expect, 14, 2) = pack('n', 12 + 7);
	$expect .= "\x03\x00\x04";
	$expect .= pack('N', crc32c($expect . "\0\0\0\0"));
	is(backend_proxy_line(), 'v2 ' . unpack('H*', $expect),
		'proxy_protocol v2: header bytes to the backend');
	$s->close;
}

$t->stop();
