#!/usr/bin/perl

# worker_processes: a number, the default (1) and auto (online CPUs).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(4);

sub conf {
	my ($workers) = @_;
	$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
$workers
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF
}

# counts settle once every worker has forked; a short quiet check after
# the expected count is reached catches extra workers
sub workers_are {
	my ($n) = @_;
	return 0 unless $t->wait_workers($n, 10);
	Time::HiRes::sleep(0.3);
	return scalar($t->worker_pids) == $n;
}

my $cpus = `getconf _NPROCESSORS_ONLN` // '';
chomp $cpus;

conf('worker_processes 3;');
$t->run();
ok(workers_are(3), 'worker_processes 3');
$t->stop();

conf('');
$t->run();
ok(workers_are(1), 'default is one worker');
$t->stop();

conf('worker_processes auto;');
$t->run();
ok($cpus =~ /^\d+$/ && workers_are($cpus), "worker_processes auto ($cpus cpus)");

# every worker is a child of the master, and the master of nobody else
my %workers = map { $_ => 1 } $t->worker_pids;
my @mail = grep { $workers{$_} } $t->children;
is(scalar @mail, $cpus, 'workers are children of the master');
$t->stop();
