#!/usr/bin/perl

# Reload (SIGHUP): listening sockets stay open across it (no connection is
# refused), a broken new config keeps the old one running, and listeners
# are added and removed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Test::Postern qw(wait_until);
use Time::HiRes qw(sleep);

my $t = Test::Postern->new()->has('proc')->plan(16);

my $dir = $t->testdir;
my $name = Test::Postern::binary_name();

sub conf {
	my ($extra_server) = @_;
	$extra_server //= '';
	$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 2;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
    $extra_server
}
EOF
}

my $port = $t->port(0);
my $port2 = $t->port(1);

conf();
$t->run();
ok($t->wait_workers(2), 'started');
my $master = $t->master_pid;

# --- a connect loop across reloads ----------------------------------------

my $stop_file = "$dir/connect.stop";
my $result_file = "$dir/connect.result";
my $started_file = "$dir/connect.started";

$t->run_daemon(sub {
	my ($ok, $failed, $error) = (0, 0, '');
	until (-e $stop_file) {
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
			Timeout => 5);
		if ($s) {
			$ok++;
			if ($ok == 1) {
				open my $fh, '>', $started_file;
				close $fh;
			}
			close $s;
		} else {
			$failed++;
			$error = "$!";
		}
		sleep 0.005;
	}
	open my $fh, '>', "$result_file.tmp" or die;
	print $fh "$ok $failed $error\n";
	close $fh;
	rename "$result_file.tmp", $result_file;
});

ok($t->waitforfile($started_file), 'connect loop running');
for my $i (1 .. 3) {
	ok($t->reload(), "reload $i: new workers");
}
is($t->master_pid, $master, 'master unchanged');

$t->write_file($stop_file, '');
ok($t->waitforfile($result_file), 'connect loop finished');
my ($ok, $failed, $error) = $t->read_file($result_file) =~ /^(\d+) (\d+) ?(.*)$/;
ok($ok > 10, "connections made across reloads ($ok)");
is($failed, 0, 'no connection refused' . ($failed ? " ($error)" : ''));

# --- a broken config keeps the old one ------------------------------------

my @workers = $t->worker_pids;
$t->write_file_expand('postern.conf', "events { }\nfoo;\n");
$t->signal('HUP');

ok(wait_until(sub {
	$t->read_file('error.log') =~ /\[emerg\] $master#\d+: unknown directive "foo" in \Q$dir\E\/postern.conf:2\n/;
}), 'broken config logged');
sleep 0.5;
is_deeply([$t->worker_pids], \@workers, 'old workers keep running');
ok($t->waitforsocket("127.0.0.1:$port", 2), 'old config still serves');

# --- listeners added and removed ------------------------------------------

conf("server {\n        listen 127.0.0.1:$port2;\n        protocol pop3;\n    }");
ok($t->reload(), 'reload with a new listener');
ok($t->waitforlisten($port2, 5)
	&& $t->waitforsocket("127.0.0.1:$port2", 2), 'new listener accepts');

conf();
ok($t->reload(), 'reload without it');
ok(wait_until(sub { !Test::Postern::listening_ports()->{$port2} }),
	'removed listener closed');

$t->stop();
