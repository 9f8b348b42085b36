#!/usr/bin/perl

# TLS session resumption with two workers, for each ssl_session_cache
# type: off (clients are told not to resume: no session id), none (a
# session id is sent but nothing is stored), builtin (per worker),
# shared (one cache for all workers) and builtin + shared; the shared
# cache kept across a reload unless its size changes; ssl_session_timeout;
# a worker killed with SIGKILL while clients hammer the shared cache; and
# session tickets without a key file across workers.  Each connection is
# mapped to the worker that accepted it through the error log's
# "PID#TID: *N client ADDR:PORT connected to" line, the client's port being
# unique.  Like mail_clients.t this needs mail sessions: it runs against
# nginx, or Postern with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::IMAP;
use Time::HiRes qw(sleep time);

my $t = Test::Postern->new()->has(qw/mail ssl proc/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
eval { require IO::Socket::SSL; IO::Socket::SSL->VERSION(2.061); 1 }
	or Test::More::plan(skip_all => 'IO::Socket::SSL too old');
$t->plan(44);

my $dir = $t->testdir;

$t->self_signed('server');

# Sessions are stored under the name of a zone per server so that the
# size of one (R) can change on reload without touching the others.
my $conf = <<'EOF';
%%TEST_GLOBALS%%
worker_processes 2;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_20%%/auth;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    # only the cache can resume, except on PORT_7
    ssl_session_tickets off;
    # TLSv1.3 is not in nginx 1.22's mail default
    ssl_protocols TLSv1.2 TLSv1.3;

    server {
        listen 127.0.0.1:%%PORT_0%% ssl;
        protocol imap;
        ssl_session_cache off;
    }
    server {
        listen 127.0.0.1:%%PORT_1%% ssl;
        protocol imap;
        ssl_session_cache none;
    }
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        protocol imap;
        ssl_session_cache builtin;
    }
    server {
        listen 127.0.0.1:%%PORT_3%% ssl;
        protocol imap;
        ssl_session_cache builtin:1000;
    }
    server {
        listen 127.0.0.1:%%PORT_4%% ssl;
        protocol imap;
        ssl_session_cache shared:SSL:1m;
    }
    server {
        listen 127.0.0.1:%%PORT_5%% ssl;
        protocol imap;
        ssl_session_cache builtin:1000 shared:BOTH:1m;
    }
    server {
        listen 127.0.0.1:%%PORT_6%% ssl;
        protocol imap;
        ssl_session_cache shared:T:1m;
        ssl_session_timeout 2s;
    }
    server {
        listen 127.0.0.1:%%PORT_7%% ssl;
        protocol imap;
        ssl_session_tickets on;
    }
    server {
        listen 127.0.0.1:%%PORT_8%% ssl;
        protocol imap;
        ssl_session_cache shared:R:%%RSIZE%%;
    }
}
EOF

sub write_conf {
	my ($rsize) = @_;
	(my $c = $conf) =~ s/%%RSIZE%%/$rsize/;
	$t->write_file_expand('postern.conf', $c);
}

write_conf('1m');
$t->run();
$t->wait_workers(2) or die "no two workers\n";

# --- clients ---------------------------------------------------------------------

# One TLS connection to server $n offering $session (or none); returns
# { port => client port, reused => 0|1, session => the session to offer
# next (a TLSv1.3 ticket arrives with the greeting) } or undef.
#
# One client context per protocol version serves every connection: a
# session whose context is freed is marked not resumable by OpenSSL.
my $offer_one = OfferOne->new;
my %client_ctx;

sub connect_tls {
	my ($n, $version, $session, $timeout) = @_;
	my $ctx = $client_ctx{$version} //= IO::Socket::SSL::SSL_Context->new(
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_version => $version, SSL_session_cache => $offer_one)
		// die "client context: " . IO::Socket::SSL::errstr() . "\n";
	$offer_one->{offer} = $session;
	$offer_one->{received} = undef;
	my $s = eval {
		Test::Postern::IMAP->new(port => $t->port($n), SSL => 1,
			timeout => $timeout // 5, SSL_reuse_ctx => $ctx,
			SSL_session_key => 'postern')
	} or return undef;
	my $greeting = $s->getline // '';
	return undef unless $greeting =~ /^\* OK /;
	my $sock = $s->socket;
	my %r = (port => $sock->sockport,
		reused => Net::SSLeay::session_reused($sock->_get_ssl_object) ? 1 : 0,
		session => $offer_one->{received} // $session);
	# with close_notify, so that OpenSSL keeps the session resumable
	$sock->close;
	return \%r;
}

# The IO::Socket::SSL session cache of the client contexts: it offers
# the session chosen for the next connection and keeps the last session
# the server sent (a TLSv1.3 server sends two tickets).
package OfferOne;

sub new { return bless {}, $_[0] }
sub get_session { return $_[0]{offer} }
sub add_session { $_[0]{received} = $_[2] }
sub del_session { }

package main;

# The worker pid of each client port, from the error log.
sub workers_of {
	my (@ports) = @_;
	my %want = map { $_ => 1 } @ports;
	my %pid;
	wait_until(sub {
		my $log = $t->read_file('error.log') // '';
		while ($log =~ /^\S+ \S+ \[info\] (\d+)#\d+: \*\d+ client 127\.0\.0\.1:(\d+) connected to /mg) {
			$pid{$2} = $1 if $want{$2};
		}
		return keys %pid == keys %want;
	}, 5);
	return map { $pid{$_} // 'unknown' } @ports;
}

# $count connections after a first one; each offers the first session
# ('first', TLSv1.2: a resumed session is that session) or the last one
# received ('last', TLSv1.3: a ticket is good for one resumption).  More
# connections are made (up to 4 x $count) until both workers accepted
# some.  Returns { reused => resumed ones, total, same => how many landed
# on the first connection's worker, other => how many did not,
# mismatch => connections landing on the first's worker that did not
# resume plus those elsewhere that did, failed => handshakes that failed,
# workers => the distinct pids }.
sub series {
	my ($n, $version, $mode, $count) = @_;
	$count //= 20;
	my $first = connect_tls($n, $version) or return { failed => 1 };
	my $offer = $first->{session};
	my @conns;
	my $failed = 0;
	while (@conns < 4 * $count) {
		my $c = connect_tls($n, $version, $offer);
		if (!$c) { $failed++; last if $failed > 3; next; }
		push @conns, $c;
		$offer = $c->{session} if $mode eq 'last';
		next if @conns < $count;
		my %w = map { $_ => 1 } workers_of(map { $_->{port} } $first, @conns);
		last if keys %w >= 2;
	}
	my ($w0, @w) = workers_of(map { $_->{port} } $first, @conns);
	my %r = (reused => 0, total => scalar @conns, same => 0, other => 0,
		mismatch => 0, failed => $failed);
	my %pids = ($w0 => 1);
	for my $i (0 .. $#conns) {
		my $same = $w[$i] eq $w0 ? 1 : 0;
		$pids{$w[$i]} = 1;
		$r{reused} += $conns[$i]{reused};
		$r{$same ? 'same' : 'other'}++;
		$r{mismatch}++ if $same != $conns[$i]{reused};
	}
	$r{workers} = scalar grep { $_ ne 'unknown' } keys %pids;
	return \%r;
}

sub summary {
	my ($r) = @_;
	return join ' ', map { "$_=" . ($r->{$_} // '-') }
		qw/total reused same other mismatch failed workers/;
}

# --- each cache type -------------------------------------------------------------

# The session id a TLSv1.2 server hands out, from `openssl s_client`
# and `openssl sess_id`: empty when the server tells it not to resume.
sub session_id {
	my ($n) = @_;
	my $file = "$dir/sess.$n";
	unlink $file;
	$t->run_cmd('openssl', 's_client', '-tls1_2', '-sess_out', $file,
		'-connect', '127.0.0.1:' . $t->port($n));
	return 'no session' unless -s $file;
	my $text = $t->openssl('sess_id', '-in', $file, '-noout', '-text');
	return $text =~ /^\s*Session-ID: ([0-9A-F]*)$/m ? $1 : 'no id';
}

# s_client does not even save a session without an id
like(session_id(0), qr/^(|no session)$/, 'off: no session id');
like(session_id(1), qr/^[0-9A-F]{64}$/, 'none: a session id all the same');

my $r = series(0, 'TLSv1_2', 'first');
is($r->{reused}, 0, 'off: nothing resumed') or diag summary($r);
ok($r->{workers} == 2 && !$r->{failed}, 'off: both workers served')
	or diag summary($r);

$r = series(1, 'TLSv1_2', 'first');
is($r->{reused}, 0, 'none: nothing resumed') or diag summary($r);
ok($r->{workers} == 2 && !$r->{failed}, 'none: both workers served')
	or diag summary($r);

for my $case ([2, 'builtin'], [3, 'builtin:1000']) {
	my ($n, $name) = @$case;
	$r = series($n, 'TLSv1_2', 'first');
	is($r->{mismatch}, 0, "$name: resumed exactly on the worker that made the session")
		or diag summary($r);
	ok($r->{same} && $r->{other} && !$r->{failed}, "$name: both workers served")
		or diag summary($r);
	is($r->{reused}, $r->{same}, "$name: resumed count") or diag summary($r);
}

for my $case ([4, 'shared:SSL:1m'], [5, 'builtin:1000 shared:BOTH:1m']) {
	my ($n, $name) = @$case;
	$r = series($n, 'TLSv1_2', 'first');
	is($r->{reused}, $r->{total}, "$name: every TLSv1.2 connection resumed")
		or diag summary($r);
	ok($r->{same} && $r->{other} && !$r->{failed}, "$name: TLSv1.2, both workers served")
		or diag summary($r);
	$r = series($n, 'TLSv1_3', 'last');
	is($r->{reused}, $r->{total}, "$name: every TLSv1.3 connection resumed")
		or diag summary($r);
	ok($r->{same} && $r->{other} && !$r->{failed}, "$name: TLSv1.3, both workers served")
		or diag summary($r);
}

# --- tickets without a key file ----------------------------------------------------

# No key file and no shared cache (PORT_7): nginx leaves the keys to
# OpenSSL, which makes them when the master creates the context, before
# the fork, so every worker has the same ones (with a shared cache,
# nginx 1.23.2+ keeps generated keys in the zone instead).  Postern's
# default random keys are shared by all workers as SPEC says: tickets
# resume whatever worker accepts.
$r = series(7, 'TLSv1_2', 'first');
is($r->{reused}, $r->{total}, 'tickets: every TLSv1.2 connection resumed')
	or diag summary($r);
ok($r->{same} && $r->{other} && !$r->{failed}, 'tickets: TLSv1.2, both workers served')
	or diag summary($r);
$r = series(7, 'TLSv1_3', 'last');
is($r->{reused}, $r->{total}, 'tickets: every TLSv1.3 connection resumed')
	or diag summary($r);
ok($r->{same} && $r->{other} && !$r->{failed}, 'tickets: TLSv1.3, both workers served')
	or diag summary($r);

# --- ssl_session_timeout -------------------------------------------------------------

my $c = connect_tls(6, 'TLSv1_2');
my $again = connect_tls(6, 'TLSv1_2', $c->{session});
is($again && $again->{reused}, 1, 'timeout 2s: resumed at once');
sleep 3;
$again = connect_tls(6, 'TLSv1_2', $c->{session});
ok($again, 'timeout 2s: a handshake after 3s');
is($again && $again->{reused}, 0, 'timeout 2s: not resumed after 3s');
my $c13 = connect_tls(6, 'TLSv1_3');
sleep 3;
$again = connect_tls(6, 'TLSv1_3', $c13->{session});
is($again && $again->{reused}, 0, 'timeout 2s: TLSv1.3 not resumed after 3s');

# --- the shared cache across a reload ----------------------------------------------------

# sessions on both workers (TLSv1.2 sessions are not used up)
my @before = map { connect_tls(8, 'TLSv1_2') } 1 .. 6;
my @before_workers = workers_of(map { $_->{port} } @before);
write_conf('1m');
ok($t->reload, 'reload with the same zone');
my $reused = grep { my $x = connect_tls(8, 'TLSv1_2', $_->{session}); $x && $x->{reused} }
	@before;
is($reused, 6, 'the sessions made before the reload resume after it');

my %old_workers = map { $_ => 1 } @before_workers;
my @after = map { connect_tls(8, 'TLSv1_2', $_->{session}) } @before;
my @after_workers = workers_of(map { $_->{port} } @after);
ok(!grep({ $old_workers{$_} } @after_workers), 'served by the new workers');

write_conf('2m');
ok($t->reload, 'reload with the zone resized');
$reused = grep { my $x = connect_tls(8, 'TLSv1_2', $_->{session}); $x && $x->{reused} }
	@before;
is($reused, 0, 'a resized zone starts empty');
my $fresh = connect_tls(8, 'TLSv1_2');
$again = connect_tls(8, 'TLSv1_2', $fresh->{session});
is($again && $again->{reused}, 1, 'the resized zone stores sessions');

# --- a worker killed while the shared cache is busy ---------------------------------------

# Children doing full and resumed handshakes in a loop on PORT_4 until
# told to stop.
my $stop_file = "$dir/hammer.stop";
my @hammers;
for my $k (1 .. 2) {
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		my $deadline = time + 20;
		my $session;
		open my $tally, '>', "$dir/hammer.$k" or POSIX::_exit(1);
		$tally->autoflush(1);
		while (!-e $stop_file && time < $deadline) {
			my $x = connect_tls(4, $k == 1 ? 'TLSv1_2' : 'TLSv1_3', $session, 2);
			# the time of each handshake that completed
			printf $tally "%.3f\n", time if $x;
			$session = $x ? $x->{session} : undef;
			# a fresh session now and then: new entries in the cache
			$session = undef if rand() < 0.3;
		}
		POSIX::_exit(0);
	}
	push @hammers, $pid;
}

my $before_kill = connect_tls(4, 'TLSv1_2');
sleep 1;
my @workers = $t->worker_pids;
my $victim = $workers[0];
my $master = $t->master_pid;
my $kill_time = time;
kill 'KILL', $victim;

# handshakes right after the kill, while the hammers go on
my ($done, $resumed_after, $slowest) = (0, 0, 0);
my $latest = $before_kill->{session};
for (1 .. 10) {
	my $t0 = time;
	my $x = connect_tls(4, 'TLSv1_2', $latest, 3);
	my $took = time - $t0;
	$slowest = $took if $took > $slowest;
	next unless $x;
	$done++;
	$resumed_after += $x->{reused};
}
is($done, 10, 'after the kill every handshake completes');
ok($slowest < 2, 'after the kill handshakes are quick')
	or diag sprintf 'slowest %.2fs', $slowest;
is($resumed_after, 10, 'after the kill a session made before it resumes');

ok(wait_until(sub {
	my @now = $t->worker_pids;
	return @now == 2 && !grep { $_ == $victim } @now;
}, 10), 'the master started a new worker');
like($t->read_file('error.log'),
	qr/\[alert\] $master#\d+: worker process $victim exited on signal 9\n/,
	'the death is logged');
my ($new) = grep { $_ != $workers[1] } $t->worker_pids;
like($t->read_file('error.log'),
	qr/\[notice\] $master#\d+: start worker process $new\n/,
	'the respawn is logged');

# the hammers keep going too: wait (a while) for their handshakes after
# the kill
sub hammer_times {
	return map { split /\n/, $t->read_file("hammer.$_") // '' } 1 .. 2;
}
wait_until(sub { (grep { $_ > $kill_time } hammer_times()) > 10 }, 5);
$t->write_file('hammer.stop', '');
for my $pid (@hammers) {
	wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 25);
}
my @after_kill = grep { $_ > $kill_time } hammer_times();
my @before_kill = grep { $_ <= $kill_time } hammer_times();
ok(@before_kill > 10 && @after_kill > 10, 'the hammers did handshakes before and after the kill')
	or diag scalar(@before_kill) . ' before, ' . scalar(@after_kill) . ' after';

# The new worker and the survivor both resume from the shared cache,
# sessions made before and after the kill.
$r = series(4, 'TLSv1_2', 'first');
is($r->{reused}, $r->{total}, 'after the respawn every connection resumed')
	or diag summary($r);
ok($r->{same} && $r->{other} && !$r->{failed}, 'after the respawn both workers served')
	or diag summary($r);
$again = connect_tls(4, 'TLSv1_2', $before_kill->{session});
is($again && $again->{reused}, 1, 'after the respawn the session from before the kill resumes');

$t->stop();
