#!/usr/bin/perl

# The SMTP client host name: with `resolver`, the client address is looked
# up by PTR and the name confirmed by a forward lookup (A/AAAA) before the
# greeting; the result goes to auth_http as Client-Host and to the backend
# as XCLIENT NAME.  Found and confirmed -> the name; PTR NXDOMAIN, forward
# NXDOMAIN or a forward answer without the client's address ->
# [UNAVAILABLE]; SERVFAIL, a timeout (resolver_timeout), an invalid PTR
# name or a UNIX-domain client -> [TEMPUNAVAIL]; answers are cached per
# worker for their TTL or `valid=`, failures are not; `resolver off` ->
# [UNAVAILABLE] without a query.  IMAP and POP3 never resolve: no query and
# no Client-Host header.  Each case has its own Perl DNS daemon
# (Test::Postern::DNS), so the answers for 127.0.0.1 can differ.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::DNS qw(dns_daemon);
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;
use Time::HiRes qw(time);

my $t = Test::Postern->new()->has(qw/mail unix/)->plan(101);
my $dir = $t->testdir;

# case => [smtp listen port placeholder, DNS daemon placeholder, script]
my %case = (
	found => [0, 20, {
		'127.0.0.1 PTR' => 'mail.example.test',
		'mail.example.test A' => ['127.0.0.1'],
	}],
	nxdomain => [1, 21, { '127.0.0.1 PTR' => 'NXDOMAIN' }],
	mismatch => [2, 22, {
		'127.0.0.1 PTR' => 'other.example.test',
		'other.example.test A' => ['127.0.0.9'],
	}],
	fwd_nxdomain => [3, 23, {
		'127.0.0.1 PTR' => 'gone.example.test',
		'gone.example.test A' => 'NXDOMAIN',
		'gone.example.test AAAA' => 'NXDOMAIN',
	}],
	servfail => [4, 24, { '127.0.0.1 PTR' => 'SERVFAIL' }],
	fwd_servfail => [5, 25, {
		'127.0.0.1 PTR' => 'flaky.example.test',
		'flaky.example.test A' => 'SERVFAIL',
		'flaky.example.test AAAA' => 'SERVFAIL',
	}],
	silent => [6, 26, { '127.0.0.1 PTR' => 'SILENT' }],
	invalid => [7, 27, {
		'127.0.0.1 PTR' => 'bad_name.example.test',
		'bad_name.example.test A' => ['127.0.0.1'],
	}],
	# an IPv6 client: ip6.arpa PTR, confirmed by AAAA
	ipv6 => [9, 29, {
		'::1 PTR' => 'six.example.test',
		'six.example.test A' => ['127.0.0.1'],
		'six.example.test AAAA' => ['::1'],
	}],
	valid => [16, 30, {
		'127.0.0.1 PTR' => 'mail.example.test',
		'mail.example.test A' => ['127.0.0.1'],
	}],
	# the IMAP/POP3 servers and the UNIX-domain SMTP server share this one
	others => [undef, 28, {
		'127.0.0.1 PTR' => 'mail.example.test',
		'mail.example.test A' => ['127.0.0.1'],
	}],
);

for my $name (sort keys %case) {
	my ($listen, $dns, $script) = @{$case{$name}};
	$t->run_daemon(\&dns_daemon, port => $t->port($dns),
		ready => "$dir/dns-$name.ready", log => "$dir/dns-$name.log",
		script => $script);
}

my $ipv6 = $t->has_feature('ipv6');
my $ipv6_server = $ipv6 ? <<'EOF' : '';
    server {
        listen [::1]:%%PORT_9%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_29%%;
    }
EOF

(my $conf = <<'EOF') =~ s/%%IPV6_SERVER%%\n/$ipv6_server/;
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_10%%/auth;
    server_name example.test;

    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_20%%;
    }
    server {
        listen 127.0.0.1:%%PORT_1%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_21%%;
    }
    server {
        listen 127.0.0.1:%%PORT_2%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_22%%;
    }
    server {
        listen 127.0.0.1:%%PORT_3%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_23%%;
    }
    server {
        listen 127.0.0.1:%%PORT_4%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_24%%;
    }
    server {
        listen 127.0.0.1:%%PORT_5%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_25%%;
    }
    server {
        listen 127.0.0.1:%%PORT_6%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_26%%;
        resolver_timeout 1s;
    }
    server {
        listen 127.0.0.1:%%PORT_7%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_27%%;
    }
    server {
        listen 127.0.0.1:%%PORT_8%%;
        protocol smtp;
        resolver off;
    }
    server {
        listen 127.0.0.1:%%PORT_16%%;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_30%% valid=1s;
    }
%%IPV6_SERVER%%
    server {
        listen unix:%%TESTDIR%%/smtp.sock;
        protocol smtp;
        resolver 127.0.0.1:%%PORT_28%%;
    }
    server {
        listen 127.0.0.1:%%PORT_11%%;
        protocol imap;
        resolver 127.0.0.1:%%PORT_28%%;
    }
    server {
        listen 127.0.0.1:%%PORT_12%%;
        protocol pop3;
        resolver 127.0.0.1:%%PORT_28%%;
    }
}
EOF
$t->write_file_expand('postern.conf', $conf);

my %backend = (smtp => $t->port(13), imap => $t->port(14), pop3 => $t->port(15));
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(10),
	"$dir/auth.log", sub {
		my ($h) = @_;
		return Test::Postern::Daemons::auth_ok(
			$backend{$h->{'auth-protocol'} // ''} // 1);
	});
for my $p (keys %backend) {
	$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend{$p}, $p,
		"$dir/$p.log");
}
$t->waitforsocket("127.0.0.1:$_") for $t->port(10), values %backend;
$t->waitforfile("$dir/dns-$_.ready") for keys %case;
$t->run();
$t->waitforfile("$dir/smtp.sock");

# The auth_http request made for login $user.
sub request_for {
	my ($user) = @_;
	my $found;
	wait_until(sub {
		($found) = grep { ($_->{h}{'auth-user'} // '') eq $user }
			Test::Postern::Daemons::auth_requests("$dir/auth.log");
		return $found;
	}, 5);
	return $found // { raw => '', h => {} };
}

# The XCLIENT line the SMTP backend got for login $user.
sub xclient_for {
	my ($user) = @_;
	my $line;
	wait_until(sub {
		($line) = $t->read_file('smtp.log') =~ /^<< (XCLIENT .*LOGIN=\Q$user\E\b.*)$/m;
		return $line;
	}, 5);
	return $line // '';
}

sub error_log_like {
	my ($re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until(sub { $t->read_file('error.log') =~ $re }, 5), $name)
		or diag($t->read_file('error.log'));
}

sub dns_queries {
	my ($name) = @_;
	return join ',', sort split /\n/, $t->read_file("dns-$name.log");
}

# An SMTP session from greeting to a relayed line; returns the seconds the
# greeting took.
sub smtp_login {
	my ($peer, $user, $label) = @_;
	my $s = Test::Postern::SMTP->new(PeerAddr => $peer);
	my $start = time;
	$s->expect("220 example.test ESMTP ready\r\n", "$label: greeting");
	my $took = time - $start;
	$s->send('EHLO client.test');
	$s->read;
	$s->send('AUTH PLAIN ' . encode_base64("\0$user\0pw", ''));
	$s->expect("235 2.0.0 OK\r\n", "$label: authenticated");
	$s->send('ECHO relayed');
	$s->expect("relayed\r\n", "$label: relayed");
	$s->close;
	return $took;
}

my $port = sub { '127.0.0.1:' . $t->port($_[0]) };
my $ptr = '1.0.0.127.in-addr.arpa';

# --- found and confirmed ---------------------------------------------------

smtp_login($port->(0), 'found', 'found');
is(request_for('found')->{h}{'client-host'}, 'mail.example.test',
	'found: Client-Host is the name');
is(xclient_for('found'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=found NAME=mail.example.test',
	'found: XCLIENT NAME is the name');
my $queries = dns_queries('found');
like($queries, qr/^\Q$ptr\E PTR,mail\.example\.test A\b/,
	'found: PTR and the forward lookup of the name');
unlike($t->read_file('error.log'), qr/\[error\].*could not be resolved/,
	'found: no resolver error logged');

# a second session within the TTL (60s): the same name
smtp_login($port->(0), 'found2', 'found again');
is(request_for('found2')->{h}{'client-host'}, 'mail.example.test',
	'found again: Client-Host');
# one resolver cache per worker: only the DNS server can tell
is(dns_queries('found'), $queries, 'found again: answered from the cache');

# --- PTR NXDOMAIN ------------------------------------------------------------

smtp_login($port->(1), 'nxdomain', 'PTR NXDOMAIN');
is(request_for('nxdomain')->{h}{'client-host'}, '[UNAVAILABLE]',
	'PTR NXDOMAIN: Client-Host [UNAVAILABLE]');
is(xclient_for('nxdomain'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=nxdomain NAME=[UNAVAILABLE]',
	'PTR NXDOMAIN: XCLIENT NAME=[UNAVAILABLE]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ 127\.0\.0\.1 could not be resolved \(3: Host not found\) while in resolving client address, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(1)}$/m,
	'PTR NXDOMAIN: error log line');
is(dns_queries('nxdomain'), "$ptr PTR", 'PTR NXDOMAIN: no forward lookup');

# failures are not cached: the next session asks again
smtp_login($port->(1), 'nxdomain2', 'PTR NXDOMAIN again');
is(dns_queries('nxdomain'), "$ptr PTR,$ptr PTR", 'PTR NXDOMAIN again: asked again');

# --- valid= ----------------------------------------------------------------------

# valid=1s instead of the answers' 60s TTL: a session right after the
# first is answered from the cache, one 2.5s later asks again
smtp_login($port->(16), 'valid1', 'valid=1s');
like(dns_queries('valid'), qr/^\Q$ptr\E PTR,mail\.example\.test A\b/,
	'valid=1s: asked');
my $valid_queries = dns_queries('valid');
smtp_login($port->(16), 'valid2', 'valid=1s, at once');
is(dns_queries('valid'), $valid_queries, 'valid=1s, at once: from the cache');
select undef, undef, undef, 2.5;
smtp_login($port->(16), 'valid3', 'valid=1s, 2.5s later');
is(dns_queries('valid'), join(',', sort((split /,/, $valid_queries) x 2)),
	'valid=1s, 2.5s later: asked again');

# --- forward lookup without the client's address -----------------------------

smtp_login($port->(2), 'mismatch', 'mismatch');
is(request_for('mismatch')->{h}{'client-host'}, '[UNAVAILABLE]',
	'mismatch: Client-Host [UNAVAILABLE]');
is(xclient_for('mismatch'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=mismatch NAME=[UNAVAILABLE]',
	'mismatch: XCLIENT NAME=[UNAVAILABLE]');
like(dns_queries('mismatch'), qr/^\Q$ptr\E PTR,other\.example\.test A\b/,
	'mismatch: the forward lookup was made');
unlike($t->read_file('error.log'), qr/other\.example\.test/,
	'mismatch: nothing logged at info level');

# --- forward NXDOMAIN ----------------------------------------------------------

smtp_login($port->(3), 'fwdnx', 'forward NXDOMAIN');
is(request_for('fwdnx')->{h}{'client-host'}, '[UNAVAILABLE]',
	'forward NXDOMAIN: Client-Host [UNAVAILABLE]');
is(xclient_for('fwdnx'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=fwdnx NAME=[UNAVAILABLE]',
	'forward NXDOMAIN: XCLIENT NAME=[UNAVAILABLE]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ "gone\.example\.test" could not be resolved \(3: Host not found\) while in resolving client hostname, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(3)}$/m,
	'forward NXDOMAIN: error log line');

# --- SERVFAIL ------------------------------------------------------------------

smtp_login($port->(4), 'servfail', 'PTR SERVFAIL');
is(request_for('servfail')->{h}{'client-host'}, '[TEMPUNAVAIL]',
	'PTR SERVFAIL: Client-Host [TEMPUNAVAIL]');
is(xclient_for('servfail'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=servfail NAME=[TEMPUNAVAIL]',
	'PTR SERVFAIL: XCLIENT NAME=[TEMPUNAVAIL]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ 127\.0\.0\.1 could not be resolved \(2: Server failure\) while in resolving client address, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(4)}$/m,
	'PTR SERVFAIL: error log line');

smtp_login($port->(5), 'fwdservfail', 'forward SERVFAIL');
is(request_for('fwdservfail')->{h}{'client-host'}, '[TEMPUNAVAIL]',
	'forward SERVFAIL: Client-Host [TEMPUNAVAIL]');
is(xclient_for('fwdservfail'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=fwdservfail NAME=[TEMPUNAVAIL]',
	'forward SERVFAIL: XCLIENT NAME=[TEMPUNAVAIL]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ "flaky\.example\.test" could not be resolved \(2: Server failure\) while in resolving client hostname, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(5)}$/m,
	'forward SERVFAIL: error log line');

# --- no answer: resolver_timeout -------------------------------------------------

my $took = smtp_login($port->(6), 'silent', 'timeout');
cmp_ok($took, '>=', 0.9, 'timeout: the greeting waits for resolver_timeout');
cmp_ok($took, '<', 4, 'timeout: and not much longer');
is(request_for('silent')->{h}{'client-host'}, '[TEMPUNAVAIL]',
	'timeout: Client-Host [TEMPUNAVAIL]');
is(xclient_for('silent'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=silent NAME=[TEMPUNAVAIL]',
	'timeout: XCLIENT NAME=[TEMPUNAVAIL]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ 127\.0\.0\.1 could not be resolved \(110: Operation timed out\) while in resolving client address, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(6)}$/m,
	'timeout: error log line');

# --- a PTR name that is not a valid host name ------------------------------------

smtp_login($port->(7), 'invalid', 'invalid name');
is(request_for('invalid')->{h}{'client-host'}, '[TEMPUNAVAIL]',
	'invalid name: Client-Host [TEMPUNAVAIL]');
is(xclient_for('invalid'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=invalid NAME=[TEMPUNAVAIL]',
	'invalid name: XCLIENT NAME=[TEMPUNAVAIL]');
error_log_like(qr/\[error\] \d+#\d+: \*\d+ 127\.0\.0\.1 resolved to invalid host name "bad_name\.example\.test" while in resolving client address, client: 127\.0\.0\.1, server: 127\.0\.0\.1:${\$t->port(7)}$/m,
	'invalid name: error log line');
is(dns_queries('invalid'), "$ptr PTR", 'invalid name: no forward lookup');

# --- resolver off ------------------------------------------------------------------

smtp_login($port->(8), 'off', 'resolver off');
is(request_for('off')->{h}{'client-host'}, '[UNAVAILABLE]',
	'resolver off: Client-Host [UNAVAILABLE]');
is(xclient_for('off'),
	'XCLIENT ADDR=127.0.0.1 LOGIN=off NAME=[UNAVAILABLE]',
	'resolver off: XCLIENT NAME=[UNAVAILABLE]');

# --- a UNIX-domain client: no lookup, [TEMPUNAVAIL] ---------------------------------

smtp_login("unix:$dir/smtp.sock", 'unixclient', 'unix');
my $h = request_for('unixclient')->{h};
is($h->{'client-host'}, '[TEMPUNAVAIL]', 'unix: Client-Host [TEMPUNAVAIL]');
is(xclient_for('unixclient'),
	'XCLIENT ADDR=unix: LOGIN=unixclient NAME=[TEMPUNAVAIL]',
	'unix: XCLIENT ADDR=unix: NAME=[TEMPUNAVAIL]');

# --- an IPv6 client ------------------------------------------------------------------

SKIP: {
	skip 'no IPv6', 6 unless $ipv6;

	smtp_login('[::1]:' . $t->port(9), 'six', 'ipv6');
	is(request_for('six')->{h}{'client-host'}, 'six.example.test',
		'ipv6: Client-Host is the name');
	is(xclient_for('six'),
		'XCLIENT ADDR=IPV6:::1 LOGIN=six NAME=six.example.test',
		'ipv6: XCLIENT ADDR=IPV6:... NAME is the name');
	like(dns_queries('ipv6'), qr/^\Q${\Test::Postern::DNS::reverse_name('::1')}\E PTR,.*six\.example\.test AAAA/,
		'ipv6: ip6.arpa PTR, confirmed by AAAA');
}

# --- IMAP and POP3 never resolve ------------------------------------------------------

my $i = Test::Postern::IMAP->new(port => $t->port(11));
$i->check(qr/^\* OK IMAP4 ready\r\n\z/, 'imap: greeting at once');
$i->cmd('LOGIN imapuser pw');
$i->check(qr/^a1 OK backend welcome\r\n\z/, 'imap: logged in');
$i->close;
my $r = request_for('imapuser');
is($r->{h}{'auth-protocol'}, 'imap', 'imap: auth_http request');
ok(!exists $r->{h}{'client-host'}, 'imap: no Client-Host header')
	or diag($r->{raw});

my $p = Test::Postern::POP3->new(port => $t->port(12));
$p->check(qr/^\+OK POP3 ready\r\n\z/, 'pop3: greeting at once');
$p->send('USER popuser');
$p->check(qr/^\+OK\r\n\z/, 'pop3: USER');
$p->send('PASS pw');
$p->check(qr/^\+OK backend welcome\r\n\z/, 'pop3: logged in');
$p->close;
$r = request_for('popuser');
is($r->{h}{'auth-protocol'}, 'pop3', 'pop3: auth_http request');
ok(!exists $r->{h}{'client-host'}, 'pop3: no Client-Host header')
	or diag($r->{raw});

is($t->read_file('dns-others.log'), '',
	'imap, pop3 and a unix-domain smtp client: no DNS query');

$t->stop();
