#!/usr/bin/perl

# Binary upgrade as nginx: USR2 starts a new master (listening sockets are
# inherited), the old pid file becomes *.oldbin, WINCH retires the old
# workers, QUIT ends the old master; the new one keeps serving.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(12);

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

my $port = $t->port(0);
my $oldbin = $t->pid_file . '.oldbin';

$t->run();
my $old = $t->master_pid;
my ($old_worker) = $t->worker_pids;

kill 'USR2', $old;
ok(wait_until(sub { ($t->read_pid($oldbin) // 0) == $old }),
	'USR2: pid file renamed to .oldbin');
my $new;
ok(wait_until(sub {
	$new = $t->read_pid;
	$new && $new != $old;
}), 'USR2: new master wrote the pid file');
ok(grep({ $_ == $new } $t->children($old)), 'new master is a child of the old');
ok(wait_until(sub { my @w = $t->children($new); @w == 1 }),
	'new master started its worker');
like($t->read_file('error.log'),
	qr/\[notice\] $old#\d+: signal 12 \(SIGUSR2\) received from \d+, changing binary\n/,
	'USR2 logged');

kill 'WINCH', $old;
ok(wait_until(sub { !Test::Postern::alive($old_worker) }),
	'WINCH: old worker exits');
ok(Test::Postern::alive($old), 'WINCH: old master stays');
ok($t->waitforsocket("127.0.0.1:$port"), 'new workers accept');

kill 'QUIT', $old;
ok(wait_until(sub { !Test::Postern::alive($old) }), 'QUIT: old master exits');
ok(wait_until(sub { !-e $oldbin }), '.oldbin removed');
is($t->read_pid, $new, 'pid file names the new master');
ok($t->waitforsocket("127.0.0.1:$port"), 'still accepting after the upgrade');

# the harness stops the master named by the pid file
$t->master_pid($new);
$t->stop();
