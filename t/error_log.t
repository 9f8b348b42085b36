#!/usr/bin/perl

# error_log: nginx's line format, level filtering, several logs at once,
# mail- and server-level logs, syslog over UDP, reopening on USR1, and the
# -e log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Sys::Hostname qw(hostname);
use Test::More;
use Test::Postern qw(wait_until);
use Time::HiRes qw(time);

my $t = Test::Postern->new()->has('proc')->plan(28);

my $name = Test::Postern::binary_name();
my $dir = $t->testdir;
my $line_re = qr/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: /;
my %levels = map { $_ => 1 } qw/debug info notice warn error crit alert emerg/;

my ($imap, $pop3, $syslog1, $syslog2) = map { $t->port($_) } 0 .. 3;

# the syslog collectors are bound before the server starts
my @udp = map {
	IO::Socket::INET->new(LocalAddr => "127.0.0.1:$_", Proto => 'udp')
		or die "udp $_: $!\n";
} $syslog1, $syslog2;

$t->write_file_expand('postern.conf', <<'EOF');
pid %%TESTDIR%%/postern.pid;
error_log %%TESTDIR%%/notice.log notice;
error_log %%TESTDIR%%/info.log info;
error_log syslog:server=127.0.0.1:%%PORT_2%%,facility=local1,tag=ptest info;
error_log syslog:server=127.0.0.1:%%PORT_3%%,nohostname notice;
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    error_log %%TESTDIR%%/mail.log info;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol pop3;
        error_log %%TESTDIR%%/server.log info;
    }
}
EOF

$t->run('-e', 'startup.log');
ok($t->wait_workers(1), 'started');
my ($worker) = $t->worker_pids;
my $master = $t->master_pid;

sub connect_to {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
		or die "connect $port: $!\n";
	my $local = $s->sockport;
	close $s;
	return $local;
}

sub log_has {
	my ($file, $re) = @_;
	return wait_until(sub { $t->read_file($file) =~ $re }, 10);
}

# --- format and levels -------------------------------------------------------

ok(log_has('notice.log', qr/\[notice\] \d+#\d+: start worker process $worker\n/),
	'start worker process notice');

my @lines = split /\n/, $t->read_file('info.log');
my @bad = grep { !/$line_re/ || !$levels{$1} } @lines;
ok(@lines > 0, 'main log has lines');
is(join("\n", @bad), '', 'every line in nginx format');
# the thread id is the pid in nginx builds with threads, 0 without them
like($t->read_file('info.log'), qr/\[notice\] (\d+)#(?:\1|0): start worker processes\n/,
	'pid#tid');
my $started = qr/\[notice\] $master#\d+: start worker process $worker\n/;
ok($t->read_file('info.log') =~ $started
	&& $t->read_file('notice.log') =~ $started,
	'several main logs get the same line');

# --- mail and server level logs ---------------------------------------------

my $cport = connect_to($imap);
my $conn_re = qr/\[info\] $worker#\d+: \*\d+ client 127\.0\.0\.1:$cport connected to 127\.0\.0\.1:$imap\n/;
ok(log_has('mail.log', $conn_re), 'mail-level log: connection at info');
unlike($t->read_file('info.log'), qr/client 127\.0\.0\.1:$cport /,
	'main log does not get mail messages');
unlike($t->read_file('notice.log'), qr/\[info\]/, 'notice log has no info');

my $pport = connect_to($pop3);
ok(log_has('server.log', qr/\[info\] $worker#\d+: \*\d+ client 127\.0\.0\.1:$pport connected to 127\.0\.0\.1:$pop3\n/),
	'server-level log');
unlike($t->read_file('mail.log'), qr/client 127\.0\.0\.1:$pport /,
	'server-level log replaces the mail-level one');

# --- syslog ------------------------------------------------------------------

# collects packets from $sock until one matches $re (or 10 s pass)
sub syslog_wait {
	my ($sock, $re, $timeout) = @_;
	my $sel = IO::Select->new($sock);
	my $end = time() + ($timeout // 10);
	while (time() < $end) {
		next unless $sel->can_read(0.2);
		$sock->recv(my $buf, 65536);
		return $buf if $buf =~ $re;
	}
	return '';
}

my $host = hostname();
$host =~ s/\..*//;
my $stamp = qr/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d/;

my $p = syslog_wait($udp[0], qr/start worker process $worker$/);
like($p, qr/^<141>$stamp \Q$host\E ptest: \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[notice\] \d+#\d+: start worker process $worker\z/,
	'syslog: facility local1, notice, hostname, tag');

$p = syslog_wait($udp[1], qr/start worker process $worker$/);
like($p, qr/^<189>$stamp \Q$name\E: \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[notice\] \d+#\d+: start worker process $worker\z/,
	'syslog: default facility local7, default tag, nohostname');

# mail sessions log to syslog only through the main log when the mail
# block has its own file log: a main-level log does not see them
is(syslog_wait($udp[0], qr/client 127\.0\.0\.1:$cport /, 1), '',
	'syslog: mail messages go to the mail-level log only');

# --- reopen on USR1 ----------------------------------------------------------

rename "$dir/info.log", "$dir/info.log.1" or die;
rename "$dir/mail.log", "$dir/mail.log.1" or die;
$t->signal('USR1');

ok(log_has('info.log.1', qr/\[notice\] \d+#\d+: signal 10 \(SIGUSR1\) received from \d+, reopening logs\n/),
	'USR1 logged in the renamed file');
ok($t->waitforfile("$dir/info.log") && $t->waitforfile("$dir/mail.log"),
	'log files reopened');
ok(log_has('info.log.1', qr/\[notice\] $worker#\d+: reopening logs\n/),
	'worker reopens');

$cport = connect_to($imap);
ok(log_has('mail.log', qr/client 127\.0\.0\.1:$cport connected/),
	'new connection in the new mail log');
unlike($t->read_file('mail.log.1'), qr/client 127\.0\.0\.1:$cport /,
	'not in the old one');
$t->reload();
ok(log_has('info.log', qr/\[notice\] $master#\d+: reconfiguring\n/),
	'master writes to the new main log');

# --- the -e log --------------------------------------------------------------

ok(-e "$dir/startup.log", '-e log file created');
unlike($t->read_file('startup.log'), qr/start worker process/,
	'-e log is not used once error_log is configured');

$t->stop();

# without error_log in the config, the -e log is the default log at "error"
$t->write_file_expand('postern.conf', <<'EOF');
pid %%TESTDIR%%/postern.pid;
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

$t->run('-e', 'default.log');
ok($t->wait_workers(1), 'started without error_log');
($worker) = $t->worker_pids;
$master = $t->master_pid;
kill 'KILL', $worker;
ok(log_has('default.log', qr/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[alert\] $master#\d+: worker process $worker exited on signal 9$/m),
	'-e log gets alerts');
unlike($t->read_file('default.log'), qr/\[(notice|info)\]/,
	'-e log default level is error');
ok($t->wait_workers(1), 'worker respawned');
$t->stop();

# levels: crit filters out error and below
$t->write_file_expand('postern.conf', <<'EOF');
pid %%TESTDIR%%/postern.pid;
error_log %%TESTDIR%%/crit.log crit;
error_log %%TESTDIR%%/alert.log alert;
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
$t->run();
ok($t->wait_workers(1), 'started with crit');
($worker) = $t->worker_pids;
kill 'KILL', $worker;
ok(log_has('alert.log', qr/\[alert\] \d+#\d+: worker process $worker exited on signal 9\n/)
	&& log_has('crit.log', qr/\[alert\] \d+#\d+: worker process $worker exited on signal 9\n/),
	'alert reaches crit and alert logs');
$t->stop();
