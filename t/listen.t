#!/usr/bin/perl

# listen: IPv4, IPv6 and unix sockets, several servers, and the info line
# logged for an accepted connection.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_KEEPALIVE);
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(14);

my $dir = $t->testdir;
my $ipv6 = $t->has_feature('ipv6');
my ($p0, $p1, $p2, $p3) = map { $t->port($_) } 0 .. 3;

my $listen6 = $ipv6 ? "listen [::1]:$p2;" : '';

$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        $listen6
        listen unix:%%TESTDIR%%/imap.sock;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% backlog=16 rcvbuf=64k sndbuf=64k so_keepalive=on;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%%PORT_3%% bind;
        protocol smtp;
    }
}
EOF

$t->run();
ok($t->wait_workers(1), 'started');
my ($worker) = $t->worker_pids;

sub log_has {
	my ($re) = @_;
	return wait_until(sub { $t->read_file('error.log') =~ $re }, 10);
}

# --- IPv4 --------------------------------------------------------------------

my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p0");
ok($s, 'IPv4 listener accepts');
my $cport = $s->sockport;
ok(log_has(qr/\[info\] $worker#\d+: \*(\d+) client 127\.0\.0\.1:$cport connected to 127\.0\.0\.1:$p0\n/),
	'accepted connection logged at info');
close $s;

my @n;
for my $port ($p1, $p3) {
	my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
	ok($c, "server on port $port accepts");
	my $lp = $c ? $c->sockport : 0;
	ok(log_has(qr/\*(\d+) client 127\.0\.0\.1:$lp connected to 127\.0\.0\.1:$port\n/),
		"connection to $port logged");
	push @n, $t->read_file('error.log') =~ /\*(\d+) client 127\.0\.0\.1:$lp /;
}
ok(@n == 2 && $n[1] > $n[0], 'connection numbers increase');

# --- parameters are applied to the listening socket ---------------------------

my $ss = `ss -Hltn 'sport = :$p1' 2>/dev/null`;
SKIP: {
	skip 'no ss', 1 unless $t->has_prog('ss') && $ss;
	# Send-Q of a listening socket is its backlog
	like($ss, qr/^LISTEN\s+\d+\s+16\s/, 'backlog=16');
}

# --- IPv6 ----------------------------------------------------------------------

SKIP: {
	skip 'no IPv6', 2 unless $ipv6;
	require IO::Socket::IP;
	my $c = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $p2);
	ok($c, 'IPv6 listener accepts');
	my $lp = $c ? $c->sockport : 0;
	ok(log_has(qr/client \[::1\]:$lp connected to \[::1\]:$p2\n/),
		'IPv6 connection logged');
}

# --- unix ----------------------------------------------------------------------

ok(-S "$dir/imap.sock", 'unix socket created');
my $u = IO::Socket::UNIX->new(Peer => "$dir/imap.sock");
ok($u, 'unix listener accepts');
close $u if $u;
ok(log_has(qr/client unix: connected to unix:\Q$dir\E\/imap.sock\n/),
	'unix connection logged');

$t->stop();
