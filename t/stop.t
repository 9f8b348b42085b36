#!/usr/bin/perl

# QUIT is a graceful stop, TERM a fast one; worker_shutdown_timeout bounds
# how long a graceful stop waits for open sessions.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Test::Postern qw(wait_until);
use Time::HiRes qw(time);

my $t = Test::Postern->new()->has('proc')->plan(15);

sub conf {
	my ($extra) = @_;
	$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
$extra
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

my $port = $t->port(0);

# --- QUIT without sessions -------------------------------------------------

conf('');
$t->run();
my $master = $t->master_pid;
my ($worker) = $t->worker_pids;
$t->signal('QUIT');
ok(wait_until(sub { !Test::Postern::alive($master) }), 'QUIT: master exits');
ok(!-e $t->pid_file, 'QUIT: pid file removed');

my $log = $t->read_file('error.log');
like($log, qr/\[notice\] $master#\d+: signal 3 \(SIGQUIT\) received from \d+, shutting down\n/,
	'QUIT: master notice');
like($log, qr/\[notice\] $worker#\d+: gracefully shutting down\n.*\[notice\] $worker#\d+: exiting\n.*\[notice\] $worker#\d+: exit\n/s,
	'QUIT: worker shuts down gracefully');
like($log, qr/\[notice\] $master#\d+: worker process $worker exited with code 0\n.*\[notice\] $master#\d+: exit\n/s,
	'QUIT: master reaps and exits');

# --- TERM ------------------------------------------------------------------

$t->write_file('error.log', '');
$t->run();
$master = $t->master_pid;
($worker) = $t->worker_pids;
$t->signal('TERM');
ok(wait_until(sub { !Test::Postern::alive($master) }), 'TERM: master exits');

$log = $t->read_file('error.log');
like($log, qr/\[notice\] $master#\d+: signal 15 \(SIGTERM\) received from \d+, exiting\n/,
	'TERM: master notice');
like($log, qr/\[notice\] $worker#\d+: exiting\n/, 'TERM: worker exits');
unlike($log, qr/gracefully shutting down/, 'TERM: not graceful');

# --- sessions: graceful waits, worker_shutdown_timeout gives up --------------

SKIP: {
	skip 'no mail sessions yet (TEST_POSTERN_MAIL=1 enables)', 6
		unless Test::Postern::has_mail_sessions();

	conf('worker_shutdown_timeout 2s;');
	$t->run();
	$master = $t->master_pid;

	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
		or die "connect: $!\n";
	my $greeting = <$s>;
	ok(defined $greeting, 'session open');

	my $start = time();
	$t->signal('QUIT');

	# the listener closes at once, the open session keeps the worker
	ok(wait_until(sub { !Test::Postern::listening_ports()->{$port} }),
		'QUIT: listener closed');

	Time::HiRes::sleep(0.5);
	ok(Test::Postern::alive($master), 'QUIT: master waits for the session');

	if (Test::Postern::is_nginx()) {
		# nginx defect: sessions that are not proxying yet ignore
		# worker_shutdown_timeout (the mail read handlers never look at
		# the close flag the shutdown timer sets)
		SKIP: { skip 'nginx ignores worker_shutdown_timeout here', 2 }
		close $s;
	} else {
		ok(wait_until(sub { !Test::Postern::alive($master) }, 15),
			'worker_shutdown_timeout ends the wait');
		my $took = time() - $start;
		ok($took >= 1.5 && $took < 10, "stopped after the timeout (${took}s)");
		close $s;
	}
	ok(wait_until(sub { !Test::Postern::alive($master) && !-e $t->pid_file }),
		'graceful stop completes');
}
