#!/usr/bin/perl

# debug_connection: with `error_log ... info`, a connection from a listed
# client logs its debug lines too (and every message of it reaches every
# log, even one at `crit`), and a connection from another client does not.  The non-matching client is 127.0.0.2 (any 127/8 address is
# local on Linux), the matching one 127.0.0.1.  And `error_log memory:1m
# debug` (a cyclic buffer read from a core dump or a debugger) is accepted.
#
# nginx does both only when built --with-debug: otherwise it ignores
# debug_connection with a warning and rejects memory: ("nginx was built
# without debug support").  Postern always behaves as a debug build: it
# has no separate build for it (a deliberate difference).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::IMAP;

my $t = Test::Postern->new()->has(qw/mail proc/)->plan(18);
my $dir = $t->testdir;

my $name = Test::Postern::binary_name();
my $with_debug = 1;
if (Test::Postern::is_nginx()) {
	my $v = $t->run_binary('-V');
	$with_debug = "$v->{stdout}$v->{stderr}" =~ /--with-debug\b/ ? 1 : 0;
}

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
error_log %%TESTDIR%%/crit.log crit;
worker_processes 1;
events {
    debug_connection 127.0.0.1;
}
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF

$t->run();
my $port = $t->port(0);

# A session from $local: greeting, CAPABILITY, LOGOUT; returns the number
# of the connection ("*N") from its "client ... connected to" log line.
sub session_from {
	my ($local) = @_;
	my $s = Test::Postern::IMAP->new(port => $port, LocalAddr => $local);
	my $local_port = $s->socket->sockport;
	$s->check(qr/^\* OK IMAP4 ready\r\n\z/, "$local: greeting");
	$s->cmd('LOGOUT');
	my @lines = $s->read_tagged;
	like($lines[-1] // '', qr/^a1 OK/, "$local: logout");
	$s->close;

	my $number;
	wait_until(sub {
		($number) = $t->read_file('error.log')
			=~ /\*(\d+) client \Q$local:$local_port\E connected to /;
		return $number;
	}, 5);
	return $number;
}

my $matched = session_from('127.0.0.1');
my $other = session_from('127.0.0.2');
ok(defined $matched && defined $other, 'both sessions logged at info level');
$matched //= 0;
$other //= 0;

# both sessions ended when their LOGOUT was answered; give the log writes
# of the server a moment (debug lines of the matched one, if any, first)
wait_until(sub {
	$t->read_file('error.log') =~ /\[debug\] \d+#\d+: \*$matched /;
}, 3) if $with_debug;
select undef, undef, undef, 0.3;
my $log = $t->read_file('error.log');
my @matched_debug = $log =~ /^(.* \[debug\] \d+#\d+: \*$matched .*)$/mg;
my @other_debug = $log =~ /^(.* \[debug\] \d+#\d+: \*$other .*)$/mg;
my @other_addr = grep { /\[debug\]/ && /127\.0\.0\.2/ } split /\n/, $log;

SKIP: {
	skip "$name built without --with-debug", 5 unless $with_debug;

	cmp_ok(scalar @matched_debug, '>', 0,
		'debug_connection 127.0.0.1: debug lines for that connection')
		or diag($log);
	is(scalar @other_debug, 0,
		'127.0.0.2: no debug lines for its connection')
		or diag(join "\n", @other_debug);
	is(scalar @other_addr, 0, '127.0.0.2: no debug line names it')
		or diag(join "\n", @other_addr);

	# a listed client's messages reach every log whatever its level
	my $crit = $t->read_file('crit.log');
	like($crit, qr/\[info\] \d+#\d+: \*$matched client 127\.0\.0\.1:\d+ connected to /,
		'127.0.0.1: its info line in the crit log too');
	unlike($crit, qr/\*$other /, '127.0.0.2: nothing in the crit log')
		or diag($crit);
}

SKIP: {
	skip "$name built with --with-debug", 2 if $with_debug;

	is(scalar @matched_debug + scalar @other_debug, 0,
		'without --with-debug: no debug lines');
	like($t->read_file('error.log'),
		qr/\[warn\] .*"debug_connection" is ignored, you need to rebuild nginx using --with-debug option to enable it/,
		'without --with-debug: debug_connection ignored with a warning');
}

$t->stop();

# --- error_log memory: ----------------------------------------------------------

my $m = Test::Postern->new();
$m->write_file_expand('postern.conf', <<'EOF');
pid %%TESTDIR%%/postern.pid;
error_log memory:1m debug;
error_log %%TESTDIR%%/error.log info;
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    error_log memory:64k debug;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF

my $r = $m->run_binary('-p', $m->testdir . '/', '-c', 'postern.conf', '-t');
SKIP: {
	skip "$name built without --with-debug", 4 unless $with_debug;

	is($r->{status}, 0, 'memory: -t accepted') or diag($r->{stderr});
	$m->run();
	my $s = Test::Postern::IMAP->new(port => $m->port(0));
	$s->check(qr/^\* OK IMAP4 ready\r\n\z/, 'memory: serving sessions');
	$s->cmd('LOGOUT');
	my @lines = $s->read_tagged;
	like($lines[-1] // '', qr/^a1 OK/, 'memory: logout');
	$s->close;
	$m->stop();
	ok($m->stopped, 'memory: stopped');
}
SKIP: {
	skip "$name built with --with-debug", 2 if $with_debug;

	isnt($r->{status}, 0, 'memory: rejected');
	like($r->{stderr}, qr/^nginx: \[emerg\] nginx was built without debug support in \S+postern\.conf:2$/m,
		'memory: the message');
}
