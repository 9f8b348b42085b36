#!/usr/bin/perl
# Memory held per idle connection by the worker of Postern and of stock
# nginx, for four states: plain and TLS (implicit) POP3 sessions waiting
# after the greeting, and plain and TLS sessions logged in and proxied to
# a silent backend. Prints the worker's VmRSS and PSS growth divided by
# the number of connections.
#
#   perl t/bench/idle_mem.pl [-k 2000] [--postern target/release/postern]
#        [--nginx /usr/sbin/nginx] [--only postern|nginx] [--port 29310]
#        [--protocols 'TLSv1.2 TLSv1.3']
#
# Needs `ulimit -n` above 2 * k + 100 (each proxied session has two
# sockets in the worker, and this script holds k client sockets). The
# ports (four from --port) must be free and below the ephemeral range.
#
# RSS counts touched pages only: a large zeroed allocation that is never
# written (parts of OpenSSL's SSL object) may not show, so compare heap
# use too (e.g. heaptrack) before drawing conclusions about TLS states.

use strict;
use warnings;
use Getopt::Long;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

my $k = 2000;
my $postern = 'target/release/postern';
my $nginx = '/usr/sbin/nginx';
my $only = '';
my $base = 29310;
my $protocols = 'TLSv1.2 TLSv1.3';
GetOptions('k=i' => \$k, 'protocols=s' => \$protocols, 'postern=s' => \$postern, 'nginx=s' => \$nginx,
	'only=s' => \$only, 'port=i' => \$base) or die "bad options\n";

my ($p_plain, $p_tls, $p_auth, $p_backend) = map { $base + $_ } 0 .. 3;
my $dir = tempdir('idle-mem-XXXXXX', TMPDIR => 1, CLEANUP => 1);

system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost"
	. " -keyout $dir/key.pem -out $dir/cert.pem -days 2 2>/dev/null") == 0
	or die "openssl req failed\n";

# auth_http says OK to everyone; the backend greets and answers every
# line with +OK, and says nothing else.
# The listening sockets are made before the fork so that a port in use
# stops the script at once.
my $auth = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p_auth",
	Listen => 1024, ReuseAddr => 1) or die "auth listen: $!\n";
my $backend = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p_backend",
	Listen => 1024, ReuseAddr => 1) or die "backend listen: $!\n";

sub helper {
	my $sel = IO::Select->new($auth, $backend);
	my %kind;
	my %buf;
	while (1) {
		for my $s ($sel->can_read) {
			if ($s == $auth || $s == $backend) {
				my $c = $s->accept or next;
				$sel->add($c);
				$kind{$c} = $s == $auth ? 'auth' : 'backend';
				$buf{$c} = '';
				syswrite $c, "+OK\r\n" if $kind{$c} eq 'backend';
				next;
			}
			my $n = sysread $s, my $data, 4096;
			if (!$n) {
				$sel->remove($s);
				delete $kind{$s};
				delete $buf{$s};
				close $s;
				next;
			}
			$buf{$s} .= $data;
			if ($kind{$s} eq 'auth') {
				next unless $buf{$s} =~ /\r\n\r\n/;
				syswrite $s, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
					. "Auth-Server: 127.0.0.1\r\nAuth-Port: $p_backend\r\n\r\n";
				$sel->remove($s);
				delete $kind{$s};
				delete $buf{$s};
				close $s;
			} else {
				while ($buf{$s} =~ s/^[^\n]*\n//) {
					syswrite $s, "+OK\r\n";
				}
			}
		}
	}
}

# One client context for every TLS connection (building one per
# connection reloads the CA store each time).
my $client_ctx = IO::Socket::SSL::SSL_Context->new(SSL_server => 0,
	SSL_verify_mode => SSL_VERIFY_NONE) or die "client context: $SSL_ERROR\n";

my $helper = fork() // die "fork: $!\n";
if ($helper == 0) {
	helper();
	exit 0;
}
close $auth;
close $backend;
END { kill 'TERM', $helper if $helper; }

sub config {
	my ($is_nginx) = @_;
	my $load = $is_nginx
		? "load_module /usr/lib/nginx/modules/ngx_mail_module.so;\n" : '';
	return $load . <<"EOF";
worker_processes 1;
pid $dir/server.pid;
error_log $dir/error.log crit;
events { worker_connections 20000; }
mail {
    # Opening k connections can take longer than the default 60s (stock
    # nginx delays each TLS greeting by a delayed ACK): idle sessions
    # must not time out before they are counted.
    timeout 1h;
    auth_http 127.0.0.1:$p_auth/auth;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    # Debian's nginx 1.22 defaults to TLSv1 TLSv1.1 TLSv1.2 (so TLS 1.2
    # with this client), Postern to nginx 1.31.5's TLSv1.2 TLSv1.3: pin
    # both to the same list so that they negotiate the same protocol.
    ssl_protocols $protocols;
    server { listen 127.0.0.1:$p_plain; protocol pop3; }
    server { listen 127.0.0.1:$p_tls ssl; protocol pop3; }
}
EOF
}

sub status_kb {
	my ($pid, $file, $field) = @_;
	open my $fh, '<', "/proc/$pid/$file" or return 0;
	while (<$fh>) {
		return $1 if /^\Q$field\E:\s+(\d+) kB/;
	}
	return 0;
}

sub memory {
	my ($pid) = @_;
	return (status_kb($pid, 'status', 'VmRSS'),
		status_kb($pid, 'smaps_rollup', 'Pss'));
}

sub worker_of {
	my ($master) = @_;
	for (1 .. 50) {
		opendir my $dh, '/proc' or die;
		for my $p (grep { /^\d+$/ } readdir $dh) {
			open my $fh, '<', "/proc/$p/stat" or next;
			my $stat = <$fh> // next;
			return $p if $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $master;
		}
		sleep 0.1;
	}
	die "no worker\n";
}

sub line {
	my ($s) = @_;
	my $line = '';
	while ($line !~ /\n/) {
		my $n = sysread $s, my $c, 512;
		die "connection closed early\n" unless $n;
		$line .= $c;
	}
	return $line;
}

sub open_one {
	my ($state) = @_;
	my $tls = $state =~ /tls/;
	my $s = $tls
		? IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$p_tls",
			SSL_reuse_ctx => $client_ctx)
		: IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p_plain");
	die "connect ($state): $! $SSL_ERROR\n" unless $s;
	line($s) =~ /^\+OK/ or die "no greeting\n";
	if ($state =~ /proxied/) {
		syswrite $s, "USER u\r\n";
		line($s) =~ /^\+OK/ or die "USER refused\n";
		syswrite $s, "PASS p\r\n";
		line($s) =~ /^\+OK/ or die "PASS refused\n";
	}
	return $s;
}

sub start_server {
	my ($name, $bin, $is_nginx) = @_;
	open my $fh, '>', "$dir/server.conf" or die;
	print $fh config($is_nginx);
	close $fh;
	unlink "$dir/server.pid";
	system($bin, '-p', $dir, '-c', "$dir/server.conf", '-e', "$dir/error.log")
		== 0 or die "$name did not start\n";
	my $master;
	for (1 .. 50) {
		if (open my $pf, '<', "$dir/server.pid") {
			$master = <$pf>;
			last if $master;
		}
		sleep 0.1;
	}
	chomp $master;
	return ($master, worker_of($master));
}

# A fresh server for each state: memory freed by one state would be
# reused by the next and hide its cost.
sub measure {
	my ($name, $bin, $is_nginx) = @_;
	my %result;
	for my $state (qw(plain tls proxied-plain proxied-tls)) {
		my $t0 = time;
		my ($master, $worker) = start_server($name, $bin, $is_nginx);
		# Warm up: the first connections build lazily made worker state
		# and use up memory the worker holds free (what the master freed
		# after reading the configuration is resident in the worker too);
		# only the growth after them is measured.
		close $_ for map { open_one($state) } 1 .. 20;
		my @conns = map { open_one($state) } 1 .. int($k / 4);
		sleep 0.5;
		my ($rss0, $pss0) = memory($worker);
		push @conns, map { open_one($state) } 1 .. $k;
		sleep 1;
		my ($rss1, $pss1) = memory($worker);
		$result{$state} = [($rss1 - $rss0) * 1024 / $k,
			($pss1 - $pss0) * 1024 / $k];
		close $_ for @conns;
		kill 'TERM', $master;
		sleep 0.1 while kill 0, $master;
		printf STDERR "%s %s: %.0f s\n", $name, $state, time - $t0;
	}
	return \%result;
}

my %all;
$all{postern} = measure('postern', $postern, 0) unless $only eq 'nginx';
$all{nginx} = measure('nginx', $nginx, 1) unless $only eq 'postern';
kill 'TERM', $helper;
waitpid $helper, 0;
$helper = 0;

printf "%-14s %-22s %-22s %s\n", 'state (k=' . $k . ')',
	'postern RSS/PSS B', 'nginx RSS/PSS B', 'RSS ratio';
for my $state (qw(plain tls proxied-plain proxied-tls)) {
	my $p = $all{postern}{$state};
	my $n = $all{nginx}{$state};
	printf "%-14s %-22s %-22s %s\n", $state,
		$p ? sprintf('%6.0f / %6.0f', @$p) : '-',
		$n ? sprintf('%6.0f / %6.0f', @$n) : '-',
		$p && $n && $n->[0] ? sprintf('%.2f', $p->[0] / $n->[0]) : '-';
}
