#!/usr/bin/perl

# A worker killed with SIGKILL is logged and replaced.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(6);

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 2;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF

$t->run();
ok($t->wait_workers(2), 'two workers');

my $master = $t->master_pid;
my ($victim, $other) = $t->worker_pids;
kill 'KILL', $victim;

ok(wait_until(sub {
	$t->read_file('error.log') =~ /\[alert\] $master#\d+: worker process $victim exited on signal 9\n/;
}), 'exit on signal 9 logged at alert');

ok(wait_until(sub {
	my @now = $t->worker_pids;
	@now == 2 && !grep { $_ == $victim } @now;
}), 'worker respawned');

my ($new) = grep { $_ != $other } $t->worker_pids;
like($t->read_file('error.log'),
	qr/\[notice\] $master#\d+: start worker process $new\n/,
	'respawn logged');
ok(Test::Postern::alive($other), 'other worker untouched');

my $port = $t->port(0);
ok($t->waitforsocket("127.0.0.1:$port"), 'still accepting');

$t->stop();
