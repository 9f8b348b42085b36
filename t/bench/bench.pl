#!/usr/bin/perl
# Postern vs stock nginx: login latency, relay throughput, idle memory.
#
# One run starts both proxies on equivalent configs (same worker_processes,
# different ports) in front of one shared backend + auth_http service, runs
# every measurement against the backend alone (baseline), nginx and Postern,
# and prints a table with the postern/nginx ratio.  See docs/benchmarks.md.
#
#   perl t/bench/bench.pl                 # full run (a few minutes)
#   perl t/bench/bench.pl --quick         # smaller numbers, for a smoke test
#   perl t/bench/bench.pl --help
#
# Only core Perl 5.36 modules, plus IO::Socket::SSL for the TLS phase.

use v5.36;
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use POSIX qw(WNOHANG _exit);
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $root = abs_path(dirname(__FILE__) . '/../..');

my %opt = (
	postern  => "$root/target/release/postern",
	nginx    => '/usr/sbin/nginx',
	module   => '/usr/lib/nginx/modules/ngx_mail_module.so',
	workers  => 1,
	sessions => 300,      # sequential sessions per latency measurement
	warmup   => 30,
	mbytes   => 200,      # per bulk transfer
	repeat   => 3,        # bulk transfers per direction, median taken
	pings    => 20000,    # relay round trips
	conns    => 2000,     # idle connections for the memory phase
	tls_conns => 1000,   # idle TLS connections (nginx takes ~45 ms per handshake)
	tls_protocols => 'TLSv1.2 TLSv1.3',  # both proxies, so they negotiate alike
	markdown => 0,
	keep     => 0,
);
GetOptions(\%opt, 'postern=s', 'nginx=s', 'module=s', 'workers=i',
	'sessions=i', 'warmup=i', 'mbytes=i', 'repeat=i', "pings=i", "conns=i", "tls_conns|tls-conns=i",
	'tls_protocols|tls-protocols=s', 'markdown!', 'keep!', 'quick', 'help')
	or die "bad options (see --help)\n";
if ($opt{help}) {
	print <<"EOF";
usage: perl t/bench/bench.pl [options]
  --postern PATH   Postern binary (default target/release/postern)
  --nginx PATH     stock nginx (default /usr/sbin/nginx)
  --module PATH    nginx mail module (default $opt{module})
  --workers N      worker_processes for both proxies (default 1)
  --sessions N     sessions per latency sample set (default 300)
  --warmup N       discarded warm-up sessions (default 30)
  --mbytes N       MB per bulk transfer (default 200)
  --repeat N       bulk transfers per direction, median reported (default 3)
  --pings N        1-line round trips through the relay (default 20000)
  --conns K        idle connections in the memory phase (default 2000)
  --tls-conns K    idle TLS connections (default 1000)
  --tls-protocols L  ssl_protocols for both proxies (default 'TLSv1.2 TLSv1.3')
  --markdown       also print the table as markdown
  --keep           keep the temporary directory (configs, logs)
  --quick          sessions 60, mbytes 50, repeat 1, pings 3000, conns 500, tls-conns 200
EOF
	exit 0;
}
@opt{qw(sessions warmup mbytes repeat pings conns tls_conns)} = (60, 10, 50, 1, 3000, 500, 200)
	if $opt{quick};

# Enough descriptors: the client holds K, the backend K, a proxy 2K.
my $need_fds = 4 * $opt{conns} + 1000;
if (!$ENV{POSTERN_BENCH_ULIMIT}) {
	my $cur = `sh -c 'ulimit -n'`;
	chomp $cur;
	if ($cur ne 'unlimited' && $cur < $need_fds) {
		$ENV{POSTERN_BENCH_ULIMIT} = 1;
		my @cmd = ($^X, abs_path(__FILE__), @ARGV);
		exec('sh', '-c', 'ulimit -n "$0" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
			$need_fds, @cmd) or die "exec sh: $!\n";
	}
}
{
	my $have = `sh -c 'ulimit -n'`;
	chomp $have;
	if ($have ne 'unlimited' && $have < $need_fds) {
		my $k = int(($have - 1000) / 4);
		die "ulimit -n is $have, too low for the memory phase (run as root or lower --conns)\n"
			if $k < 50;
		warn "ulimit -n is $have: --conns lowered to $k\n";
		$opt{conns} = $k;
	}
}

-x $opt{postern} or die "no Postern binary at $opt{postern}: run cargo build --release\n";
-x $opt{nginx} or die "no nginx at $opt{nginx}: apt-get install nginx-light libnginx-mod-mail\n";
-f $opt{module} or die "no nginx mail module at $opt{module}\n";

$SIG{PIPE} = 'IGNORE';
my $dir = tempdir('postern-bench-XXXXXX', TMPDIR => 1, CLEANUP => !$opt{keep});
my %children;    # pid => name, everything we started
my $main_pid = $$;

sub cleanup {
	return unless $$ == $main_pid;
	for my $pid (keys %children) {
		# a proxy master: take its workers down with it
		my @workers = children_of($pid);
		kill 'TERM', $pid, @workers;
	}
	my $until = time + 5;
	while (%children && time < $until) {
		for my $pid (keys %children) {
			delete $children{$pid} if waitpid($pid, WNOHANG) != 0;
		}
		sleep 0.05 if %children;
	}
	for my $pid (keys %children) {
		kill 'KILL', $pid, children_of($pid);
		waitpid($pid, 0);
		delete $children{$pid};
	}
}
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub ($sig) { cleanup(); print STDERR "\ninterrupted (SIG$sig, pid $$)\n"; _exit(130) };
END { local $?; cleanup() if defined $main_pid && $$ == $main_pid }

sub children_of ($ppid) {
	my @kids;
	opendir(my $d, '/proc') or return;
	for my $p (grep { /^\d+$/ } readdir $d) {
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh> // next;
		# pid (comm) state ppid ...
		push @kids, $p if $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $ppid;
	}
	return @kids;
}

sub free_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Listen => 1, ReuseAddr => 1) or die "port: $@\n";
	return $s->sockport;
}

sub spawn ($name, $code) {
	my $pid = fork // die "fork: $!\n";
	if (!$pid) {
		$SIG{INT} = $SIG{TERM} = 'DEFAULT';
		eval { $code->() };
		print STDERR "$name: $@" if $@;
		_exit(0);
	}
	$children{$pid} = $name;
	return $pid;
}

sub wait_port ($port, $what) {
	my $until = time + 10;
	while (time < $until) {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
		return 1 if $s;
		sleep 0.02;
	}
	die "$what did not listen on port $port\n";
}

###########################################################################
# The shared backend and auth_http service: one single-threaded event loop
# (select over non-blocking sockets), so it can hold thousands of idle
# sessions.  Backend protocol after login (IMAP or POP3):
#   BIG <n>      -> n raw bytes
#   UPLOAD <n>   -> swallows n raw bytes, then "DONE"
#   any line     -> echoed back
###########################################################################

sub services ($auth_port, $imap_port, $pop3_port) {
	my %listen;
	for ([auth => $auth_port], [imap => $imap_port], [pop3 => $pop3_port]) {
		my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
			LocalPort => $_->[1], Listen => 4096, ReuseAddr => 1)
			or die "listen $_->[1]: $@\n";
		$l->blocking(0);
		$listen{fileno $l} = [$_->[0], $l];
	}
	my $chunk = 'x' x (1 << 20);
	my %conn;    # fileno => state
	my @timers; # [when, conn, data]: a reply part written later
	my $greet = { imap => "* OK bench backend ready\r\n",
		pop3 => "+OK bench backend ready\r\n" };

	while (1) {
		my ($rin, $win) = ('', '');
		vec($rin, $_, 1) = 1 for keys %listen;
		for my $fd (keys %conn) {
			my $c = $conn{$fd};
			vec($rin, $fd, 1) = 1 unless $c->{closing};
			vec($win, $fd, 1) = 1 if length $c->{out} || $c->{big};
		}
		my $wait;
		if (@timers) {
			$wait = $timers[0][0] - time;
			$wait = 0 if $wait < 0;
		}
		my $n = select(my $rout = $rin, my $wout = $win, undef, $wait);
		while (@timers && $timers[0][0] <= time) {
			my (undef, $c, $data) = @{ shift @timers };
			$c->{out} .= $data;
			my $w = syswrite($c->{fh}, $c->{out});
			substr($c->{out}, 0, $w, "") if $w;
		}
		next if $n <= 0;
		for my $fd (keys %listen) {
			next unless vec($rout, $fd, 1);
			my ($kind, $l) = @{ $listen{$fd} };
			while (my $s = $l->accept) {
				$s->blocking(0);
				setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
				$conn{fileno $s} = { fh => $s, kind => $kind, in => '',
					out => $kind eq 'auth' ? '' : $greet->{$kind},
					state => 'login', big => 0, swallow => 0 };
			}
		}
		for my $fd (keys %conn) {
			my $c = $conn{$fd} // next;
			if (vec($rout, $fd, 1)) {
				my $got = sysread($c->{fh}, my $buf, 1 << 20);
				if (!$got) {
					next if !defined $got && $!{EAGAIN};
					close $c->{fh};
					delete $conn{$fd};
					next;
				}
				if ($c->{swallow}) {
					my $take = $got < $c->{swallow} ? $got : $c->{swallow};
					$c->{swallow} -= $take;
					substr($buf, 0, $take, '');
					$c->{out} .= "DONE\r\n" if !$c->{swallow};
				}
				$c->{in} .= $buf;
				service_input($c, \@timers, $auth_port, $imap_port, $pop3_port);
			}
			if (vec($wout, $fd, 1)) {
				if (length $c->{out}) {
					my $w = syswrite($c->{fh}, $c->{out});
					substr($c->{out}, 0, $w, '') if $w;
				} elsif ($c->{big}) {
					my $len = $c->{big} < length $chunk ? $c->{big} : length $chunk;
					my $w = syswrite($c->{fh}, $chunk, $len);
					$c->{big} -= $w if $w;
				}
				if ($c->{closing} && !length $c->{out}) {
					close $c->{fh};
					delete $conn{$fd};
				}
			}
		}
	}
}

sub service_input ($c, $timers, @ports) {
	my ($auth_port, $imap_port, $pop3_port) = @ports;
	if ($c->{kind} eq 'auth') {
		return unless $c->{in} =~ /\r\n\r\n/;
		my ($proto) = $c->{in} =~ /^Auth-Protocol: (\w+)/mi;
		my $port = ($proto // '') eq 'pop3' ? $pop3_port : $imap_port;
		$c->{out} = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
			. "Auth-Server: 127.0.0.1\r\nAuth-Port: $port\r\n\r\n";
		$c->{closing} = 1;
		$c->{in} = '';
		return;
	}
	if ($c->{state} eq 'login' && $c->{kind} eq 'imap') {
		# nginx and Postern log in with synchronizing literals
		# ("1 LOGIN {5}", "bench {6}", "secret") or quoted strings.
		while (1) {
			if ($c->{litneed}) {
				return if length $c->{in} < $c->{litneed};
				$c->{cmd} .= substr($c->{in}, 0, $c->{litneed}, '');
				$c->{litneed} = 0;
			}
			return unless $c->{in} =~ s/^([^\n]*\n)//;
			my $line = $1;
			$c->{cmd} .= $line;
			if ($line =~ /\{(\d+)\}\r\n\z/) {
				$c->{litneed} = $1;
				$c->{out} .= "+ go ahead\r\n";
				next;
			}
			my ($tag, $verb) = $c->{cmd} =~ /^(\S+) (\S+)/;
			$c->{cmd} = "";
			if (uc($verb // "") eq "LOGIN") {
				$c->{out} .= "$tag OK LOGIN completed\r\n";
				$c->{state} = "relay";
				last;
			}
			$c->{out} .= "* CAPABILITY IMAP4rev1\r\n" if uc($verb // "") eq "CAPABILITY";
			$c->{out} .= ($tag // "*") . " OK done\r\n";
		}
	}
	while (!$c->{swallow} && $c->{in} =~ s/^([^\n]*\n)//) {
		my $line = $1;
		if ($c->{state} eq 'login') {    # POP3
			$c->{out} .= "+OK\r\n";
			$c->{state} = 'relay' if $line =~ /^PASS /i;
		} elsif ($line =~ /^SPLIT/) {
			# an untagged line now, the final line 1 ms later, as a server
			# that streams a response and then completes it
			$c->{out} .= "* part one\r\n";
			push @$timers, [time + 0.001, $c, "SPLIT done\r\n"];
		} elsif ($line =~ /^BIG (\d+)/) {
			$c->{big} += $1;
		} elsif ($line =~ /^UPLOAD (\d+)/) {
			$c->{swallow} = $1;
			my $take = length $c->{in} < $1 ? length $c->{in} : $1;
			substr($c->{in}, 0, $take, '');
			$c->{swallow} -= $take;
			$c->{out} .= "DONE\r\n" if !$c->{swallow};
		} else {
			$c->{out} .= $line;
		}
	}

}

###########################################################################
# Proxies
###########################################################################

my %port = map { $_ => free_port() } qw(auth imap pop3);

my $openssl = `sh -c 'command -v openssl'`;
chomp $openssl;
my $have_cert = 0;
if ($openssl) {
	$have_cert = system("$openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
		. " -nodes -keyout $dir/key.pem -out $dir/cert.pem -days 2 -subj /CN=bench.test"
		. " >/dev/null 2>&1") == 0;
}

sub proxy_conf ($name, $tag, $ports, $tls) {
	my $pre = $name eq "nginx" ? "load_module $opt{module};\n" : '';
	my $servers = '';
	if ($tls) {
		$servers = <<"EOF";
        server {
            listen 127.0.0.1:$ports->{tls} ssl;
            protocol imap;
            ssl_certificate $dir/cert.pem;
            ssl_certificate_key $dir/key.pem;
            # Debian's nginx 1.22 still defaults to TLSv1 TLSv1.1 TLSv1.2
            # and would negotiate TLS 1.2 while Postern (1.31.5 defaults)
            # negotiates 1.3: pin both so they do the same handshake.
            ssl_protocols $opt{tls_protocols};
        }
EOF
	} else {
		$servers = <<"EOF";
        server {
            listen 127.0.0.1:$ports->{imap};
            protocol imap;
        }
        server {
            listen 127.0.0.1:$ports->{pop3};
            protocol pop3;
        }
EOF
	}
	my $n = $opt{workers};
	my $wc = 2 * $opt{conns} + 1024;
	my $rl = 2 * $wc + 100;
	return <<"EOF";
${pre}daemon off;
master_process on;
worker_processes $n;
worker_rlimit_nofile $rl;
pid $dir/$tag.pid;
error_log $dir/$tag-error.log warn;
events {
    worker_connections $wc;
}
mail {
    auth_http 127.0.0.1:$port{auth}/auth;
$servers}
EOF
}

# Starts a proxy in the foreground of its own process; returns its record
# or undef (with the reason) when the config is refused.
sub start_proxy ($name, $bin, $tls, $tag) {
	my %ports = map { $_ => free_port() } qw(imap pop3 tls);
	open(my $fh, '>', "$dir/$tag.conf") or die "$dir/$tag.conf: $!\n";
	print $fh proxy_conf($name, $tag, \%ports, $tls);
	close $fh;
	my @cmd = ($bin, '-p', "$dir/", '-c', "$dir/$tag.conf", '-e', "$dir/$tag-error.log");
	my $test = `@cmd -t 2>&1`;
	return (undef, (split /\n/, $test)[0] // 'config refused') if $?;
	my $pid = fork // die "fork: $!\n";
	if (!$pid) {
		open(STDOUT, '>', "$dir/$tag.out");
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd) or _exit(127);
	}
	$children{$pid} = $tag;
	my $p = { name => $name, master => $pid, ports => \%ports };
	wait_port($tls ? $ports{tls} : $ports{imap}, $tag);
	my $until = time + 10;
	while (time < $until) {
		my @w = children_of($pid);
		if (@w >= $opt{workers}) { $p->{workers} = [@w]; last }
		sleep 0.05;
	}
	die "$tag: no workers\n" unless $p->{workers};
	return ($p);
}

sub stop_proxy ($p) {
	kill 'QUIT', $p->{master};
	my $until = time + 10;
	while (time < $until) {
		if (waitpid($p->{master}, WNOHANG) != 0) {
			delete $children{ $p->{master} };
			return;
		}
		sleep 0.05;
	}
	kill 'KILL', $p->{master}, @{ $p->{workers} };
	waitpid($p->{master}, 0);
	delete $children{ $p->{master} };
}

sub version_of ($bin) {
	my $v = `$bin -v 2>&1`;
	$v =~ s/\s+\z//;
	return (split /\n/, $v)[0];
}

###########################################################################
# Clients
###########################################################################

sub connect_to ($port) {
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
		Proto => 'tcp') or die "connect $port: $@\n";
	setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
	return $s;
}

# Reads until $re matches the data read so far; returns it.
sub read_until ($s, $re, $what) {
	my $data = '';
	while ($data !~ $re) {
		my $n = sysread($s, $data, 65536, length $data);
		die "$what: connection closed after " . length($data) . " bytes: "
			. substr($data, 0, 200) . "\n" unless $n;
	}
	return $data;
}

sub send_all ($s, $data) {
	my $off = 0;
	while ($off < length $data) {
		my $w = syswrite($s, $data, length($data) - $off, $off);
		die "write: $!\n" unless defined $w;
		$off += $w;
	}
}

# One IMAP session: connect..greeting, CAPABILITY round trip,
# connect..tagged OK of LOGIN.  Times in seconds.
sub imap_session ($port) {
	my $t0 = time;
	my $s = connect_to($port);
	read_until($s, qr/\r\n/, 'imap greeting');
	my $t1 = time;
	send_all($s, "c1 CAPABILITY\r\n");
	read_until($s, qr/^c1 OK[^\n]*\n/m, 'imap capability');
	my $t2 = time;
	send_all($s, "a1 LOGIN bench secret\r\n");
	read_until($s, qr/^a1 OK[^\n]*\n/m, 'imap login');
	my $t3 = time;
	close $s;
	return { greeting => $t1 - $t0, capa => $t2 - $t1, login => $t3 - $t0 };
}

sub pop3_session ($port) {
	my $t0 = time;
	my $s = connect_to($port);
	read_until($s, qr/\r\n/, 'pop3 greeting');
	my $t1 = time;
	send_all($s, "USER bench\r\n");
	read_until($s, qr/^\+OK[^\n]*\n/m, 'pop3 user');
	my $t2 = time;
	send_all($s, "PASS secret\r\n");
	read_until($s, qr/^\+OK[^\n]*\n/m, 'pop3 pass');
	my $t3 = time;
	close $s;
	return { greeting => $t1 - $t0, user => $t2 - $t1, login => $t3 - $t0 };
}

# A session ready to relay: logged in over IMAP (through a proxy) or
# straight to the backend.
sub relay_session ($port) {
	my $s = connect_to($port);
	read_until($s, qr/\r\n/, 'greeting');
	send_all($s, "a1 LOGIN bench secret\r\n");
	read_until($s, qr/^a1 OK[^\n]*\n/m, 'login');
	return $s;
}

sub median (@v) {
	@v = sort { $a <=> $b } @v;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub pct ($p, @v) {
	@v = sort { $a <=> $b } @v;
	my $i = int($p / 100 * @v + 0.5) - 1;
	$i = 0 if $i < 0;
	$i = $#v if $i > $#v;
	return $v[$i];
}

# CPU time of processes in seconds, nanosecond precision from schedstat
# when the kernel has it, clock ticks from stat otherwise.
sub cpu_of (@pids) {
	my $sum = 0;
	for my $pid (@pids) {
		if (open(my $fh, '<', "/proc/$pid/schedstat")) {
			my ($ns) = split ' ', scalar <$fh>;
			$sum += $ns / 1e9;
			next;
		}
		open(my $fh, '<', "/proc/$pid/stat") or next;
		my $stat = <$fh>;
		$stat =~ s/^.*\)\s+//;
		my @f = split ' ', $stat;
		$sum += ($f[11] + $f[12]) / 100;    # utime + stime
	}
	return $sum;
}

sub mem_of (@pids) {
	my ($rss, $pss) = (0, 0);
	for my $pid (@pids) {
		if (open(my $fh, '<', "/proc/$pid/status")) {
			while (my $l = <$fh>) { $rss += $1 * 1024 if $l =~ /^VmRSS:\s+(\d+) kB/ }
		}
		if (open(my $fh, '<', "/proc/$pid/smaps_rollup")) {
			while (my $l = <$fh>) { $pss += $1 * 1024 if $l =~ /^Pss:\s+(\d+) kB/ }
		}
	}
	return ($rss, $pss);
}

###########################################################################
# Measurements
###########################################################################

my %res;    # $res{metric}{target} = value
my @order;  # metric names in print order, with unit and direction
sub record_metric ($metric, $unit, $better, $target, $value) {
	push @order, [$metric, $unit, $better] unless exists $res{$metric};
	$res{$metric}{$target} = $value;
}

# Latency of every target in one interleaved run: each round does one
# IMAP and one POP3 session against each target, in an order that
# alternates, so that neither is always measured after the other (on a
# shared machine, the one measured second was consistently slower, which
# ever it was). %$ports: target => [imap port, pop3 port].
sub bench_latency ($ports) {
	my @names = sort keys %$ports;
	for (1 .. $opt{warmup}) {
		for my $n (@names) {
			imap_session($ports->{$n}[0]);
			pop3_session($ports->{$n}[1]);
		}
	}
	my (%imap, %pop3);
	for my $round (1 .. $opt{sessions}) {
		my @order = $round % 2 ? @names : reverse @names;
		for my $n (@order) {
			my $r = imap_session($ports->{$n}[0]);
			push @{ $imap{$n}{$_} }, $r->{$_} * 1000 for keys %$r;
			$r = pop3_session($ports->{$n}[1]);
			push @{ $pop3{$n}{$_} }, $r->{$_} * 1000 for keys %$r;
		}
	}
	for my $n (@names) {
		for my $set (['IMAP greeting (connect..* OK)', $imap{$n}{greeting}],
			['IMAP CAPABILITY round trip', $imap{$n}{capa}],
			['IMAP connect..LOGIN OK', $imap{$n}{login}],
			['POP3 greeting (connect..+OK)', $pop3{$n}{greeting}],
			['POP3 USER round trip', $pop3{$n}{user}],
			['POP3 connect..PASS +OK', $pop3{$n}{login}])
		{
			record_metric("$set->[0], median", 'ms', 'lower', $n, median(@{ $set->[1] }));
			record_metric("$set->[0], p99", 'ms', 'lower', $n, pct(99, @{ $set->[1] }));
		}
	}
}

# Relay throughput, CPU and round trips of every target, interleaved like
# the latency: one session per target, each repetition visits them in
# alternating order. %$targets: name => [port, worker pids] (no pids for
# the backend alone: no CPU figure).
sub bench_relay ($targets) {
	my @names = sort keys %$targets;
	my $order = sub ($i) { $i % 2 ? @names : reverse @names };
	my %s = map { $_ => relay_session($targets->{$_}[0]) } @names;
	my $size = $opt{mbytes} * 1_000_000;
	my (%down, %up, %cpu_down, %cpu_up, %rates, %split);

	# warm-up, then backend -> client
	for my $n (@names) {
		send_all($s{$n}, "BIG 1000000\r\n");
		read_exact($s{$n}, 1_000_000);
	}
	for my $i (1 .. $opt{repeat}) {
		for my $n ($order->($i)) {
			my ($s, $pids) = ($s{$n}, $targets->{$n}[1]);
			my $c0 = cpu_of(@$pids);
			my $t0 = time;
			send_all($s, "BIG $size\r\n");
			read_exact($s, $size);
			my $dt = time - $t0;
			push @{ $down{$n} }, $size / $dt / 1e6;
			push @{ $cpu_down{$n} }, (cpu_of(@$pids) - $c0) / ($size / 1e8);
		}
	}
	# client -> backend
	my $block = 'y' x (1 << 20);
	for my $i (1 .. $opt{repeat}) {
		for my $n ($order->($i)) {
			my ($s, $pids) = ($s{$n}, $targets->{$n}[1]);
			my $c0 = cpu_of(@$pids);
			my $t0 = time;
			send_all($s, "UPLOAD $size\r\n");
			my $left = $size;
			while ($left > 0) {
				my $k = $left < length $block ? $left : length $block;
				my $w = syswrite($s, $block, $k);
				die "upload: $!\n" unless defined $w;
				$left -= $w;
			}
			read_until($s, qr/DONE\r\n/, 'upload');
			my $dt = time - $t0;
			push @{ $up{$n} }, $size / $dt / 1e6;
			push @{ $cpu_up{$n} }, (cpu_of(@$pids) - $c0) / ($size / 1e8);
		}
	}
	# ping-pong of one short line
	for my $n (@names) {
		for (1 .. 200) { send_all($s{$n}, "ping\r\n"); read_until($s{$n}, qr/\n/, 'ping') }
	}
	for my $i (1 .. $opt{repeat}) {
		for my $n ($order->($i)) {
			my $s = $s{$n};
			my $t0 = time;
			for (1 .. $opt{pings}) {
				send_all($s, "ping\r\n");
				my $k = sysread($s, my $buf, 64);
				die "ping: closed\n" unless $k;
				$k = sysread($s, $buf, 64, length $buf) while $buf !~ /\n/;
			}
			push @{ $rates{$n} }, $opt{pings} / (time - $t0);
		}
	}
	# a reply in two parts 1 ms apart: without TCP_NODELAY the second part
	# waits for the client to acknowledge the first (delayed ACK)
	for my $i (1 .. $opt{warmup} + $opt{sessions}) {
		for my $n ($order->($i)) {
			my $t0 = time;
			send_all($s{$n}, "SPLIT\r\n");
			read_until($s{$n}, qr/SPLIT done\r\n/, "split");
			push @{ $split{$n} }, (time - $t0) * 1000 if $i > $opt{warmup};
		}
	}
	close $s{$_} for @names;
	for my $n (@names) {
		record_metric('relay backend->client', 'MB/s', 'higher', $n, median(@{ $down{$n} }));
		record_metric('relay client->backend', 'MB/s', 'higher', $n, median(@{ $up{$n} }));
		record_metric('relay 1-line round trips', '/s', 'higher', $n, median(@{ $rates{$n} }));
		record_metric("relay two-part reply (1 ms apart), median", "ms", "lower", $n, median(@{ $split{$n} }));
		record_metric("relay two-part reply (1 ms apart), p99", "ms", "lower", $n, pct(99, @{ $split{$n} }));
		next unless @{ $targets->{$n}[1] };
		record_metric('proxy CPU, backend->client', 'ms/100MB', 'lower', $n, median(@{ $cpu_down{$n} }) * 1000);
		record_metric('proxy CPU, client->backend', 'ms/100MB', 'lower', $n, median(@{ $cpu_up{$n} }) * 1000);
	}
}

sub read_exact ($s, $n) {
	my $left = $n;
	while ($left > 0) {
		my $got = sysread($s, my $buf, $left < (1 << 20) ? $left : 1 << 20);
		die "bulk read: closed with $left bytes left\n" unless $got;
		$left -= $got;
	}
}

# Settles the allocator's view a little, then reads worker memory.
sub settle_mem ($pids) {
	sleep 0.5;
	return mem_of(@$pids);
}

# Idle memory: a fresh proxy per connection state, so that memory freed by
# one state and kept by the allocator does not hide the next one's cost.
sub bench_memory ($name, $bin, $state) {
	my ($p, $why) = start_proxy($name, $bin, 0, "$name-mem-$state");
	die "$name refused its config: $why\n" unless $p;
	my $pids = $p->{workers};
	my $k = $opt{conns};
	# warm the worker up so that one-time allocations are not counted
	# per connection.
	for (1 .. 20) { imap_session($p->{ports}{imap}) }
	my ($rss0, $pss0) = settle_mem($pids);
	record_metric('worker RSS, no connections', 'KiB', 'lower', $name, $rss0 / 1024)
		if $state eq 'preauth';
	my @held;
	if ($state eq 'preauth') {
		# greeted, then silent
		for (1 .. $k) {
			my $s = connect_to($p->{ports}{imap});
			read_until($s, qr/\r\n/, 'idle greeting');
			push @held, $s;
		}
	} else {
		# logged in, relaying nothing; batches keep the listen queue short
		# and overlap the logins' latency.
		my $batch = 100;
		for (my $i = 0; $i < $k; $i += $batch) {
			my $n = $k - $i < $batch ? $k - $i : $batch;
			my @b = map { connect_to($p->{ports}{imap}) } 1 .. $n;
			read_until($_, qr/\r\n/, 'idle greeting') for @b;
			send_all($_, "a1 LOGIN bench secret\r\n") for @b;
			read_until($_, qr/^a1 OK[^\n]*\n/m, 'idle login') for @b;
			push @held, @b;
		}
	}
	my ($rss, $pss) = settle_mem($pids);
	my $label = $state eq 'preauth' ? 'idle pre-auth' : 'idle proxied';
	record_metric("$label, RSS/conn", 'B', 'lower', $name, ($rss - $rss0) / $k);
	record_metric("$label, PSS/conn", 'B', 'lower', $name, ($pss - $pss0) / $k);
	close $_ for @held;
	@held = ();
	if ($state eq 'proxied') {
		sleep 1;
		($rss) = settle_mem($pids);
		record_metric("worker RSS after closing all", 'KiB', 'lower', $name, $rss / 1024);
	}
	stop_proxy($p);
}

sub bench_tls_memory ($name, $bin) {
	my $label = 'idle TLS pre-auth, RSS/conn';
	my $na = sub ($why) {
		record_metric("TLS connect..greeting, median", "ms", "lower", $name, "n/a");
		record_metric($label, 'B', 'lower', $name, "n/a");
		print STDERR "  $name TLS: n/a ($why)\n";
	};
	return $na->('no openssl to make a certificate') unless $have_cert;
	return $na->('IO::Socket::SSL missing') unless eval { require IO::Socket::SSL; 1 };
	my ($p, $why) = start_proxy($name, $bin, 1, "$name-tls");
	return $na->($why) unless $p;
	my $ok = eval {
		my $port = $p->{ports}{tls};
		my $one = sub {
			my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $port,
				SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(), Timeout => 5)
				or die "TLS handshake failed: " . IO::Socket::SSL::errstr() . "\n";
			my $g = '';
			while ($g !~ /\r\n/) {
				my $n = sysread($s, $g, 4096, length $g);
				die "no greeting over TLS\n" unless $n;
			}
			return $s;
		};
		for (1 .. 20) { my $s = $one->(); close $s }
		my ($rss0, $pss0) = settle_mem($p->{workers});
		my (@held, @lat);
		for (1 .. $opt{tls_conns}) {
			my $t0 = time;
			push @held, $one->();
			push @lat, (time - $t0) * 1000;
		}
		record_metric("TLS connect..greeting, median", "ms", "lower", $name, median(@lat));

		my ($rss, $pss) = settle_mem($p->{workers});
		record_metric($label, 'B', 'lower', $name, ($rss - $rss0) / $opt{tls_conns});
		record_metric('idle TLS pre-auth, PSS/conn', 'B', 'lower', $name, ($pss - $pss0) / $opt{tls_conns});
		close $_ for @held;
		1;
	};
	my $err = $@;
	stop_proxy($p);
	$na->($err =~ s/\s+\z//r) unless $ok;
}

###########################################################################
# Run
###########################################################################

spawn('services', sub { services($port{auth}, $port{imap}, $port{pop3}) });
wait_port($port{$_}, "services $_") for qw(auth imap pop3);

my $t_start = time;
my @targets = (['nginx', $opt{nginx}], ['postern', $opt{postern}]);
my %ver = map { $_->[0] => version_of($_->[1]) } @targets;

sub phase ($msg) {
	printf STDERR "[%5.1fs] %s\n", time - $t_start, $msg;
	# a stuck phase fails the run instead of hanging it
	$SIG{ALRM} = sub { die "timed out: $msg\n" };
	alarm 600;
}

# Latency and relay: the backend alone (the baseline) and every proxy,
# running together and measured interleaved (on a shared machine the
# target measured second was consistently slower, whichever it was).
my %latency_ports = (backend => [$port{imap}, $port{pop3}]);
my %relay_targets = (backend => [$port{imap}, []]);
my @running;
for my $t (@targets) {
	my ($name, $bin) = @$t;
	my ($p, $why) = start_proxy($name, $bin, 0, $name);
	die "$name refused its config: $why\n" unless $p;
	$latency_ports{$name} = [$p->{ports}{imap}, $p->{ports}{pop3}];
	$relay_targets{$name} = [$p->{ports}{imap}, $p->{workers}];
	push @running, $p;
}
phase('latency (backend alone and each proxy, interleaved)');
bench_latency(\%latency_ports);
phase('relay (backend alone and each proxy, interleaved)');
bench_relay(\%relay_targets);
stop_proxy($_) for @running;

for my $t (@targets) {
	my ($name, $bin) = @$t;
	phase("$name: idle memory ($opt{conns} connections)");
	bench_memory($name, $bin, $_) for qw(preauth proxied);
	phase("$name: idle TLS memory");
	bench_tls_memory($name, $bin);
}
alarm 0;
phase("done");
cleanup();

###########################################################################
# Report
###########################################################################

sub fmt ($v, $unit) {
	return 'n/a' if !defined $v || $v eq 'n/a';
	return sprintf('%.3f', $v) if $unit eq 'ms';
	return sprintf('%.0f', $v) if $v >= 100 || $v <= -100;
	return sprintf('%.1f', $v);
}

sub ratio ($m) {
	my ($n, $p) = ($res{$m}{nginx}, $res{$m}{postern});
	return 'n/a' if grep { !defined || $_ eq 'n/a' || $_ == 0 } $n, $p;
	return sprintf('%.2f', $p / $n);
}

my $cpu = '?';
if (open(my $fh, '<', '/proc/cpuinfo')) {
	while (<$fh>) { if (/^model name\s*:\s*(.*)/) { $cpu = $1; last } }
}
chomp(my $kernel = `uname -sr`);
my $ncpu = `grep -c ^processor /proc/cpuinfo`;
chomp $ncpu;
my $date = POSIX::strftime('%Y-%m-%d %H:%M %Z', localtime);
chomp(my $commit = `git -C $root rev-parse --short HEAD 2>/dev/null` // '');

my @head = ('metric', 'unit', 'backend', 'nginx', 'postern', 'postern/nginx');
my @rows;
for my $o (@order) {
	my ($m, $unit, $better) = @$o;
	push @rows, [$m, $unit, fmt($res{$m}{backend}, $unit), fmt($res{$m}{nginx}, $unit),
		fmt($res{$m}{postern}, $unit), ratio($m) . ($better eq 'lower' ? ' (<1 better)' : ' (>1 better)')];
}
for (@rows) { $_->[2] = '-' if $_->[2] eq 'n/a' }

print "\nPostern vs nginx mail proxy benchmark, $date\n";
print "machine: $ncpu x $cpu, $kernel (shared with other work: expect noise)\n";
print "nginx: $ver{nginx}; postern: $ver{postern}" . ($commit ? " (commit $commit)" : '') . "\n";
print "worker_processes $opt{workers}; $opt{sessions} sessions per latency set after $opt{warmup} warm-up;"
	. " $opt{mbytes} MB x $opt{repeat} per direction; $opt{pings} x $opt{repeat} round trips;"
	. " $opt{conns} idle connections\n\n";
my @w = map { my $i = $_; my $m = length $head[$i]; for (@rows) { $m = length $_->[$i] if length $_->[$i] > $m } $m } 0 .. $#head;
my $line = sub (@c) {
	join('  ', map { $_ == 0 ? sprintf("%-*s", $w[$_], $c[$_]) : sprintf("%*s", $w[$_], $c[$_]) } 0 .. $#c) . "\n";
};
print $line->(@head);
print $line->(map { '-' x $_ } @w);
print $line->(@$_) for @rows;

if ($opt{markdown}) {
	print "\n| " . join(' | ', @head) . " |\n";
	print '|' . join('|', '---', map { '---:' } 1 .. $#head) . "|\n";
	print '| ' . join(' | ', @$_) . " |\n" for @rows;
}
print "\nkept: $dir\n" if $opt{keep};
