package Test::Postern;

# A small nginx-tests-style harness for Postern: each test gets a private
# prefix directory, a config written from a heredoc with placeholders, free
# ports, and helpers to run, signal and stop the binary under test.  The
# same tests run against stock nginx (the behavioural reference) when
# TEST_POSTERN_BINARY points at it.

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(ESRCH);
use Fcntl qw(O_CREAT O_EXCL O_WRONLY);
use File::Basename qw(basename dirname);
use File::Path qw(rmtree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

use base 'Exporter';
our @EXPORT_OK = qw(wait_until);

our $NGINX_MAIL_MODULE = '/usr/lib/nginx/modules/ngx_mail_module.so';
our $PORT_LOCK_DIR = File::Spec->catdir(File::Spec->tmpdir(), 'postern-ports');

my @instances;    # every harness object, cleaned up in END
my $repo_root = abs_path(dirname(__FILE__) . '/../../..');

sub new {
	my ($class) = @_;

	my $dir = tempdir('postern-test-' . ('X' x 8), TMPDIR => 1, CLEANUP => 0);
	# workers may run as another user (nobody when started as root)
	chmod 0755, $dir;

	my $self = bless {
		_testdir => $dir,
		_ports => {},
		_port_locks => [],
		_daemons => [],
		_main_conf => 'postern.conf',
		_owner => $$,
	}, $class;

	push @instances, $self;
	return $self;
}

# --- the binary under test -------------------------------------------------

sub binary {
	my $bin = $ENV{TEST_POSTERN_BINARY} // "$repo_root/target/debug/postern";
	$bin = File::Spec->rel2abs($bin, $repo_root) unless $bin =~ m{^/};
	return $bin;
}

# True when the binary is stock nginx (the reference implementation).
sub is_nginx {
	return 1 if $ENV{TEST_POSTERN_NGINX};
	return basename(binary()) eq 'nginx' ? 1 : 0;
}

# The name the binary prints in its own messages ("postern:" / "nginx:").
sub binary_name {
	return is_nginx() ? 'nginx' : 'postern';
}

# Mail sessions (greetings, auth, proxying) exist in nginx; in Postern they
# arrive with the mail issue, announced to the tests by TEST_POSTERN_MAIL=1.
sub has_mail_sessions {
	return is_nginx() || $ENV{TEST_POSTERN_MAIL} ? 1 : 0;
}

sub testdir { $_[0]->{_testdir} }

sub main_conf {
	my ($self, $name) = @_;
	$self->{_main_conf} = $name if defined $name;
	return $self->{_main_conf};
}

# --- requirements and plan -------------------------------------------------

sub has_module {
	my ($self, $module) = @_;
	return eval "require $module; 1" ? 1 : 0;
}

sub has_prog {
	my ($self, $prog) = @_;
	for my $d (File::Spec->path(), '/sbin', '/usr/sbin') {
		return 1 if -x "$d/$prog";
	}
	return 0;
}

sub has_feature {
	my ($self, $feature) = @_;

	return has_mail_sessions() if $feature eq 'mail';
	return is_nginx() if $feature eq 'nginx';
	return !is_nginx() if $feature eq 'postern';
	return $self->has_module('IO::Socket::SSL') if $feature eq 'ssl';
	return -d '/proc/self' ? 1 : 0 if $feature eq 'proc';
	return 1 if $feature eq 'unix';
	return ipv6_available() if $feature eq 'ipv6';
	return 0;
}

# $t->has(qw/mail ipv6/): skip the whole test file unless all are present.
sub has {
	my ($self, @features) = @_;
	for my $f (@features) {
		next if $self->has_feature($f);
		Test::More::plan(skip_all => "no $f");
	}
	return $self;
}

sub plan {
	my ($self, $n) = @_;
	if (!-x binary()) {
		Test::More::plan(skip_all => 'no binary ' . binary()
			. ' (build it or set TEST_POSTERN_BINARY)');
	}
	Test::More::plan(tests => $n);
	return $self;
}

sub ipv6_available {
	require IO::Socket::IP;
	my $s = IO::Socket::IP->new(
		Listen => 1, LocalHost => '::1', LocalPort => 0,
		Proto => 'tcp',
	);
	return $s ? 1 : 0;
}

# --- ports -----------------------------------------------------------------

# A free TCP+UDP port for placeholder %%PORT_n%%.  Candidates start at
# 10000 + n plus a per-process offset; each one is reserved with a lock
# file so that test files running in parallel (prove -j) never share one.
sub port {
	my ($self, $n) = @_;
	return $self->{_ports}{$n} if exists $self->{_ports}{$n};

	mkdir $PORT_LOCK_DIR;
	chmod 01777, $PORT_LOCK_DIR;

	# below the kernel's ephemeral range (32768+), so that client sockets
	# of other tests cannot take a port between this check and the bind
	my $base = ($$ % 400) * 50;
	for my $try (0 .. 2000) {
		my $port = 10000 + ($base + $n + $try * 97) % 22000;
		next if grep { $_ == $port } values %{$self->{_ports}};
		my $lock = "$PORT_LOCK_DIR/$port";
		if (-e $lock) {
			# a lock left by a process that has gone is stale
			my ($pid) = (read_whole($lock) // '') =~ /(\d+)/;
			unlink $lock if !$pid || !kill(0, $pid) && $! == ESRCH;
		}
		sysopen(my $fh, $lock, O_CREAT | O_EXCL | O_WRONLY) or next;
		print $fh "$$\n";
		close $fh;
		if (!port_is_free($port)) {
			unlink $lock;
			next;
		}
		push @{$self->{_port_locks}}, $lock;
		return $self->{_ports}{$n} = $port;
	}
	die "no free port for PORT_$n\n";
}

sub port_is_free {
	my ($port) = @_;
	for my $proto ('tcp', 'udp') {
		my $s = IO::Socket::INET->new(
			LocalAddr => "127.0.0.1:$port", Proto => $proto,
			($proto eq 'tcp' ? (Listen => 1, ReuseAddr => 1) : ()),
		) or return 0;
		close $s;
	}
	return 1;
}

# --- files -----------------------------------------------------------------

sub expand {
	my ($self, $content) = @_;

	my $dir = $self->testdir;
	my $globals = "pid $dir/postern.pid;\n"
		. "error_log $dir/error.log info;\n"
		. ($ENV{TEST_POSTERN_GLOBALS} // '');
	my $globals_mail = $ENV{TEST_POSTERN_GLOBALS_MAIL} // '';

	$content =~ s/%%TEST_GLOBALS%%/$globals/g;
	$content =~ s/%%TEST_GLOBALS_MAIL%%/$globals_mail/g;
	$content =~ s/%%PORT_(\d+)%%/$self->port($1)/ge;
	$content =~ s/%%TESTDIR%%/$dir/g;
	$content =~ s/%%NAME%%/binary_name()/ge;
	return $content;
}

sub write_file {
	my ($self, $name, $content) = @_;
	my $path = $name =~ m{^/} ? $name : $self->testdir . "/$name";
	open my $fh, '>', $path or die "can't write $path: $!\n";
	binmode $fh;
	print $fh $content;
	close $fh or die "can't write $path: $!\n";
	return $path;
}

# Writes a config with placeholders expanded.  For nginx, the main config
# gets the mail module loaded on its first line (on the same line, so that
# line numbers in error messages are the same for both binaries).
sub write_file_expand {
	my ($self, $name, $content) = @_;
	$content = $self->expand($content);
	if (is_nginx() && $name eq $self->main_conf) {
		$content = "load_module $NGINX_MAIL_MODULE; $content";
	}
	return $self->write_file($name, $content);
}

sub read_whole {
	my ($path) = @_;
	open my $fh, '<', $path or return undef;
	binmode $fh;
	local $/;
	my $content = <$fh>;
	close $fh;
	return $content;
}

sub read_file {
	my ($self, $name) = @_;
	my $path = $name =~ m{^/} ? $name : $self->testdir . "/$name";
	return read_whole($path) // '';
}

# --- waiting ---------------------------------------------------------------

# Polls $cond every 50 ms until it returns true or $timeout seconds pass.
sub wait_until {
	my ($cond, $timeout) = @_;
	$timeout //= 10;
	my $end = time() + $timeout;
	while (1) {
		my $r = $cond->();
		return $r if $r;
		return undef if time() > $end;
		sleep 0.05;
	}
}

sub waitforfile {
	my ($self, $file, $timeout) = @_;
	return wait_until(sub { -e $file }, $timeout);
}

sub waitforsocket {
	my ($self, $peer, $timeout) = @_;
	return wait_until(sub {
		my $s = IO::Socket::INET->new(PeerAddr => $peer, Proto => 'tcp');
		return $s ? 1 : 0;
	}, $timeout);
}

# Ports in LISTEN state, from /proc/net/tcp and tcp6 (checked without
# connecting, so that waiting leaves no trace in the logs).
sub listening_ports {
	my %ports;
	for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
		open my $fh, '<', $f or next;
		while (<$fh>) {
			my @f = split;
			next unless defined $f[3] && $f[3] eq '0A';
			my ($port) = $f[1] =~ /:([0-9A-F]+)$/ or next;
			$ports{hex $port} = 1;
		}
	}
	return \%ports;
}

sub waitforlisten {
	my ($self, $port, $timeout) = @_;
	return wait_until(sub { listening_ports()->{$port} }, $timeout);
}

# --- processes -------------------------------------------------------------

sub pid_file { $_[0]->testdir . '/postern.pid' }

sub read_pid {
	my ($self, $file) = @_;
	my ($pid) = $self->read_file($file // $self->pid_file) =~ /^(\d+)/;
	return $pid;
}

# True while $pid exists and is not a zombie (the daemonized master is not
# our child and init may be slow to reap it).
sub alive {
	my ($pid) = @_;
	return 0 unless $pid;
	return 0 unless kill 0, $pid;
	my $stat = read_whole("/proc/$pid/stat") // return 1;
	my ($state) = $stat =~ /\)\s+(\S)/;
	return defined $state && ($state eq 'Z' || $state eq 'X') ? 0 : 1;
}

# The master the harness signals and stops (settable, e.g. after a binary
# upgrade).
sub master_pid {
	my ($self, $pid) = @_;
	$self->{_master} = $pid if defined $pid;
	return $self->{_master};
}

# Direct children of $pid (default: the master), found through /proc.
sub children {
	my ($self, $ppid) = @_;
	$ppid //= $self->{_master} // return ();
	my @kids;
	opendir my $dh, '/proc' or return ();
	for my $pid (grep { /^\d+$/ } readdir $dh) {
		my $stat = read_whole("/proc/$pid/stat") // next;
		my ($state, $parent) = $stat =~ /\)\s+(\S)\s+(\d+)/ or next;
		next if $state eq 'Z' || $state eq 'X';
		push @kids, $pid + 0 if $parent == $ppid;
	}
	@kids = sort { $a <=> $b } @kids;
	return @kids;
}

# Worker processes: the children whose command line says so (the master
# may also run helper processes in the future).
sub worker_pids {
	my ($self) = @_;
	return grep {
		my $cmd = read_whole("/proc/$_/cmdline") // '';
		$cmd !~ /cache manager|cache loader/;
	} $self->children;
}

sub wait_workers {
	my ($self, $count, $timeout) = @_;
	return wait_until(sub { scalar($self->worker_pids) == $count }, $timeout);
}

# Runs the binary (`-p testdir -c postern.conf -e error.log` plus @args)
# and waits for the pid file and for every configured TCP port to listen.
sub run {
	my ($self, @args) = @_;

	my $dir = $self->testdir;
	unlink $self->pid_file;

	my @cmd = (binary(), '-p', "$dir/", '-c', $self->main_conf,
		'-e', 'error.log', @args);
	my $out = $self->run_cmd(@cmd);
	if ($out->{status} != 0) {
		$self->dump_log('error.log');
		die "can't start " . binary_name() . ": exit "
			. ($out->{status} >> 8) . "\n$out->{stderr}";
	}

	$self->waitforfile($self->pid_file, 10)
		or die "no pid file after start\n" . $self->read_file('error.log');
	$self->{_master} = wait_until(sub { $self->read_pid }, 5)
		or die "empty pid file\n";

	my $conf = $self->read_file($self->main_conf);
	for my $port ($self->conf_ports($conf)) {
		$self->waitforlisten($port, 10)
			or die "port $port is not listening\n";
	}
	return $self;
}

# Runs the binary in the foreground (for `daemon off` and `master_process
# off`): it stays our child; returns its pid once the pid file names it.
sub run_foreground {
	my ($self, @args) = @_;

	my $dir = $self->testdir;
	unlink $self->pid_file;

	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$dir/foreground.out";
		open STDERR, '>&', \*STDOUT;
		my @cmd = (binary(), '-p', "$dir/", '-c', $self->main_conf,
			'-e', 'error.log', @args);
		{ no warnings 'exec'; exec { $cmd[0] } @cmd; }
		POSIX::_exit(127);
	}
	push @{$self->{_foreground}}, $pid;

	wait_until(sub { ($self->read_pid // 0) == $pid
			|| waitpid($pid, WNOHANG) == $pid }, 10);
	die "foreground process did not start\n"
		. $self->read_file('foreground.out') . $self->read_file('error.log')
		unless ($self->read_pid // 0) == $pid && alive($pid);
	$self->{_master} = $pid;

	for my $port ($self->conf_ports($self->read_file($self->main_conf))) {
		$self->waitforlisten($port, 10)
			or die "port $port is not listening\n";
	}
	return $pid;
}

# Exit status of a foreground process after it ended (undef if running).
sub foreground_status {
	my ($self, $pid, $timeout) = @_;
	my $r = wait_until(sub { waitpid($pid, WNOHANG) == $pid }, $timeout // 10);
	return $r ? $? : undef;
}

sub conf_ports {
	my ($self, $conf) = @_;
	my @ports;
	while ($conf =~ /^\s*listen\s+(?:[^;\s]*?:)?(\d+)[\s;]/mg) {
		push @ports, $1;
	}
	return @ports;
}

# Runs openssl with these arguments; returns its stdout, dies with its
# stderr when it fails.
sub openssl {
	my ($self, @args) = @_;
	my $r = $self->run_cmd('openssl', @args);
	die "openssl @args: $r->{stderr}\n" if $r->{status};
	return $r->{stdout};
}

# A self-signed RSA certificate for $subject (/CN=localhost when not
# given) in the test directory: $name.pem and $name.key.
sub self_signed {
	my ($self, $name, $subject) = @_;
	my $dir = $self->testdir;
	$self->openssl(qw/req -x509 -newkey rsa:2048 -nodes -days 2 -subj/,
		$subject // '/CN=localhost',
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.pem");
}

# Runs a command to completion; returns its exit status, stdout and stderr.
sub run_cmd {
	my ($self, @cmd) = @_;
	my $dir = $self->testdir;
	my ($o, $e) = ("$dir/.cmd.out", "$dir/.cmd.err");

	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', $o or POSIX::_exit(126);
		open STDERR, '>', $e or POSIX::_exit(126);
		{ no warnings 'exec'; exec { $cmd[0] } @cmd; }
		POSIX::_exit(127);
	}

	my $ok = wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 30);
	my $status = $?;
	if (!$ok) {
		kill 'KILL', $pid;
		waitpid $pid, 0;
		$status = -1;
	}
	my %r = (status => $status, stdout => read_whole($o) // '',
		stderr => read_whole($e) // '');
	unlink $o, $e;
	return \%r;
}

# Runs the binary with the given arguments (no defaults added).
sub run_binary {
	my ($self, @args) = @_;
	return $self->run_cmd(binary(), @args);
}

sub signal {
	my ($self, $sig) = @_;
	my $pid = $self->{_master} // $self->read_pid;
	return kill $sig, $pid;
}

# HUP, then wait until a full set of new workers replaced the old ones.
# Returns false if no new workers appeared (e.g. the new config is broken).
sub reload {
	my ($self, %opts) = @_;
	my %old = map { $_ => 1 } $self->worker_pids;
	my $count = $opts{workers} // scalar keys %old;
	$self->signal('HUP');
	return wait_until(sub {
		my @now = $self->worker_pids;
		my @new = grep { !$old{$_} } @now;
		my @left = grep { $old{$_} } @now;
		return @new >= $count && !@left;
	}, $opts{timeout} // 10);
}

# Graceful stop: QUIT, then TERM after a timeout, then KILL.
sub stop {
	my ($self, %opts) = @_;
	my $pid = $self->{_master} or return $self;
	my @kids = $self->children;

	for my $step (['QUIT', $opts{timeout} // 15], ['TERM', 10], ['KILL', 5]) {
		my ($sig, $wait) = @$step;
		kill $sig, $pid;
		last if wait_until(sub { !alive($pid) }, $wait);
	}
	# workers must not outlive their master
	wait_until(sub { !grep { alive($_) } @kids }, 5);
	kill 'KILL', grep { alive($_) } @kids;

	delete $self->{_master};
	return $self;
}

sub stopped {
	my ($self) = @_;
	return !alive($self->{_master});
}

# Forks a Perl daemon (a mail backend, an auth_http service, a syslog
# listener): $code->(@args) runs in the child, which exits when it returns.
sub run_daemon {
	my ($self, $code, @args) = @_;
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		@instances = ();
		$self->{_owner} = 0;
		eval { $code->(@args) };
		warn $@ if $@;
		POSIX::_exit(0);
	}
	push @{$self->{_daemons}}, $pid;
	return $pid;
}

sub dump_log {
	my ($self, $name) = @_;
	my $log = $self->read_file($name);
	Test::More::diag("--- $name:\n$log") if length $log;
}

sub cleanup {
	my ($self) = @_;
	return unless $self->{_owner} && $self->{_owner} == $$;

	# the master we started, and any other named by the pid files (a
	# binary upgrade leaves two)
	my %masters = map { $_ => 1 } grep { $_ && alive($_) }
		$self->{_master}, $self->read_pid,
		$self->read_pid($self->pid_file . '.oldbin');
	for my $master (keys %masters) {
		my @kids = $self->children($master);
		kill 'TERM', $master;
		wait_until(sub { !alive($master) }, 5)
			or kill 'KILL', $master, @kids;
	}
	for my $pid (@{$self->{_foreground} // []}) {
		kill 'KILL', $pid if alive($pid);
		waitpid $pid, 0;
	}
	for my $pid (@{$self->{_daemons}}) {
		kill 'TERM', $pid;
		wait_until(sub { waitpid($pid, WNOHANG) != 0 }, 3)
			or do { kill 'KILL', $pid; waitpid $pid, 0 };
	}
	@{$self->{_daemons}} = ();

	my $failed = !Test::More->builder->is_passing;
	if ($failed && $ENV{TEST_POSTERN_VERBOSE}) {
		opendir my $dh, $self->testdir;
		$self->dump_log($_) for sort grep { /\.log$/ } readdir $dh;
	}
	unlink @{$self->{_port_locks}};
	if ($ENV{TEST_POSTERN_LEAVE}) {
		Test::More::diag('test directory left in ' . $self->testdir);
	} else {
		rmtree($self->testdir);
	}
	$self->{_owner} = 0;
}

END {
	my $status = $?;
	$_->cleanup for @instances;
	$? = $status;
}

1;
