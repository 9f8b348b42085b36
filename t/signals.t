#!/usr/bin/perl

# The pid file and `-s stop|quit|reopen|reload`, which read the pid file
# named by the configuration.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(21);

my $name = Test::Postern::binary_name();
my $dir = $t->testdir;

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF

my @base = ('-p', "$dir/", '-c', 'postern.conf', '-e', 'error.log');

sub log_has {
	my ($re) = @_;
	return wait_until(sub { $t->read_file('error.log') =~ $re }, 10);
}

# --- pid file --------------------------------------------------------------

$t->run();
my $pid = $t->master_pid;
like($t->read_file('postern.pid'), qr/^\d+\n\z/, 'pid file content');
ok(Test::Postern::alive($pid), 'master from pid file is running');
my @kids = $t->children;
is(scalar @kids, 1, 'one worker, child of the master');

# --- -s reopen ---------------------------------------------------------------

my $r = $t->run_binary(@base, '-s', 'reopen');
is($r->{stderr} . $r->{status}, '0', '-s reopen: silent, exit 0');
ok(log_has(qr/\[notice\] \d+#\d+: signal process started\n/),
	'signal process started');
ok(log_has(qr/\[notice\] $pid#\d+: reopening logs\n/), 'master reopens logs');

# --- -s reload ---------------------------------------------------------------

$r = $t->run_binary(@base, '-s', 'reload');
is($r->{stderr} . $r->{status}, '0', '-s reload: silent, exit 0');
ok(log_has(qr/\[notice\] $pid#\d+: reconfiguring\n/), 'reconfiguring');
ok(wait_until(sub {
	my @now = $t->children;
	@now == 1 && $now[0] != $kids[0];
}), 'worker replaced after reload');
is($t->read_pid, $pid, 'same master after reload');

# --- -s quit -----------------------------------------------------------------

$r = $t->run_binary(@base, '-s', 'quit');
is($r->{stderr} . $r->{status}, '0', '-s quit: silent, exit 0');
ok(wait_until(sub { !Test::Postern::alive($pid) }), 'master exited on quit');
ok(wait_until(sub { !-e $t->pid_file }), 'pid file removed on quit');
like($t->read_file('error.log'),
	qr/\[notice\] $pid#\d+: signal 3 \(SIGQUIT\) received from \d+, shutting down\n/,
	'quit logged');

# --- -s stop -----------------------------------------------------------------

$t->run();
$pid = $t->master_pid;
$r = $t->run_binary(@base, '-s', 'stop');
is($r->{stderr} . $r->{status}, '0', '-s stop: silent, exit 0');
ok(wait_until(sub { !Test::Postern::alive($pid) }), 'master exited on stop');
ok(wait_until(sub { !-e $t->pid_file }), 'pid file removed on stop');
like($t->read_file('error.log'),
	qr/\[notice\] $pid#\d+: signal 15 \(SIGTERM\) received from \d+, exiting\n/,
	'stop logged');

# --- errors ------------------------------------------------------------------

my $pidfile = $t->pid_file;

$r = $t->run_binary(@base, '-s', 'quit');
is($r->{stderr}, "$name: [error] open() \"$pidfile\" failed"
	. " (2: No such file or directory)\n", '-s without pid file');
is($r->{status} >> 8, 1, '-s without pid file: exit 1');

$t->write_file('postern.pid', "abc\n");
$r = $t->run_binary(@base, '-s', 'quit');
is($r->{stderr}, "$name: [error] invalid PID number \"abc\" in \"$pidfile\"\n",
	'-s with an invalid pid file');
