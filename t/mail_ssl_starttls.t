#!/usr/bin/perl

# STARTTLS/STLS and implicit TLS on IMAP, POP3 and SMTP: for every
# `starttls off|on|only` on a plain and on an `ssl` listen, the greeting
# and the capability lists byte for byte before and after TLS, the
# STARTTLS replies, `only` refusing logins before TLS, plaintext pipelined
# after STARTTLS thrown away, a full login over STARTTLS and over implicit
# TLS relayed to a plain backend (Auth-SSL: on), the old `ssl on;`, a
# client writing before it read the greeting, and the handshake timeout.
# Runs against nginx, or Postern with TEST_POSTERN_MAIL=1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64);
use Test::More;
use Test::Postern qw(wait_until);
use Test::Postern::Daemons;
use Test::Postern::IMAP;
use Test::Postern::POP3;
use Test::Postern::SMTP;
use Time::HiRes qw(time);

my $t = Test::Postern->new()->has(qw/mail ssl/);
Test::More::plan(skip_all => 'no openssl') unless $t->has_prog('openssl');
$t->plan(152);

my $dir = $t->testdir;
my $nginx = Test::Postern::is_nginx();

$t->self_signed('server');

my @protos = qw/imap pop3 smtp/;
my @modes = qw/off on only/;

# The grid of servers: protocol x starttls x (plain listen, ssl listen).
sub grid_port {
	my ($proto, $mode, $ssl) = @_;
	my %pi = (imap => 0, pop3 => 1, smtp => 2);
	my %mi = (off => 0, on => 1, only => 2);
	return $t->port($pi{$proto} * 6 + $mi{$mode} * 2 + ($ssl ? 1 : 0));
}

my $servers = '';
for my $p (0 .. $#protos) {
	for my $m (0 .. $#modes) {
		for my $s (0, 1) {
			my $n = $p * 6 + $m * 2 + $s;
			my $ssl = $s ? ' ssl' : '';
			$servers .= <<"EOF";
    server {
        listen 127.0.0.1:%%PORT_$n%%$ssl;
        protocol $protos[$p];
        starttls $modes[$m];
    }
EOF
		}
	}
}

$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
mail {
    auth_http 127.0.0.1:%%PORT_30%%/auth;
    server_name example.test;
    xclient off;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;

$servers
    server {
        listen 127.0.0.1:%%PORT_18%%;
        listen 127.0.0.1:%%PORT_19%%;
        protocol imap;
        ssl on;
    }
    server {
        listen 127.0.0.1:%%PORT_20%% ssl;
        protocol imap;
        timeout 1s;
    }
    server {
        listen 127.0.0.1:%%PORT_21%%;
        protocol pop3;
        starttls on;
        timeout 1s;
    }
}
EOF

my %backend = (imap => $t->port(31), pop3 => $t->port(32), smtp => $t->port(33));
$t->run_daemon(\&Test::Postern::Daemons::auth_http_scripted, $t->port(30),
	"$dir/auth.log", sub {
		my ($h) = @_;
		return Test::Postern::Daemons::auth_ok(
			$backend{$h->{'auth-protocol'} // 'imap'});
	});
for my $p (@protos) {
	$t->run_daemon(\&Test::Postern::Daemons::mail_backend, $backend{$p}, $p,
		"$dir/backend_$p.log");
}
$t->waitforsocket("127.0.0.1:$_") for $t->port(30), values %backend;

$t->run();

# --- expected texts ----------------------------------------------------------

my %greeting = (
	imap => "* OK IMAP4 ready\r\n",
	pop3 => "+OK POP3 ready\r\n",
	smtp => "220 example.test ESMTP ready\r\n",
);

# Capability replies: before TLS with each starttls value, and under TLS.
my $imap_caps = '* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS';
my $pop3_caps = "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n";
my %caps = (
	imap => {
		off => "$imap_caps AUTH=PLAIN\r\n",
		on => "$imap_caps AUTH=PLAIN STARTTLS\r\n",
		# the auth methods give way to LOGINDISABLED
		only => "$imap_caps STARTTLS LOGINDISABLED\r\n",
		tls => "$imap_caps AUTH=PLAIN\r\n",
	},
	pop3 => {
		off => "${pop3_caps}SASL PLAIN LOGIN\r\n.\r\n",
		on => "${pop3_caps}SASL PLAIN LOGIN\r\nSTLS\r\n.\r\n",
		# neither USER nor SASL before TLS
		only => "+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n",
		tls => "${pop3_caps}SASL PLAIN LOGIN\r\n.\r\n",
	},
	smtp => {
		off => "250-example.test\r\n250 AUTH PLAIN LOGIN\r\n",
		on => "250-example.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
		only => "250-example.test\r\n250 STARTTLS\r\n",
		tls => "250-example.test\r\n250 AUTH PLAIN LOGIN\r\n",
	},
);

my %invalid = (
	imap => sub { "$_[0] BAD invalid command\r\n" },
	pop3 => sub { "-ERR invalid command\r\n" },
	smtp => sub { "500 5.5.1 Invalid command\r\n" },
);

my %client = (
	imap => 'Test::Postern::IMAP',
	pop3 => 'Test::Postern::POP3',
	smtp => 'Test::Postern::SMTP',
);

# Sends the capability command and checks the reply byte for byte.
sub capability {
	my ($s, $proto, $want, $name) = @_;
	if ($proto eq 'imap') {
		my $tag = $s->cmd('CAPABILITY');
		$s->expect("$want$tag OK completed\r\n", $name);
	} elsif ($proto eq 'pop3') {
		$s->send('CAPA');
		$s->expect($want, $name);
	} else {
		$s->send('EHLO client.test');
		$s->expect($want, $name);
	}
}

# Sends STARTTLS/STLS; returns the exact reply expected when it is taken.
sub starttls_cmd {
	my ($s, $proto) = @_;
	if ($proto eq 'imap') {
		my $tag = $s->cmd('STARTTLS');
		return ("$tag OK completed\r\n", $tag);
	} elsif ($proto eq 'pop3') {
		$s->send('STLS');
		return ("+OK\r\n", '');
	}
	$s->send('STARTTLS');
	return ("220 2.0.0 Start TLS\r\n", '');
}

my $auth_log = "$dir/auth.log";
sub auth_requests { return Test::Postern::Daemons::auth_requests($auth_log) }

# --- the grid: greetings, capabilities, STARTTLS -------------------------------

for my $proto (@protos) {
	for my $mode (@modes) {
		for my $ssl (0, 1) {
			my $what = "$proto starttls $mode" . ($ssl ? ' ssl' : '');
			my $s = $client{$proto}->new(port => grid_port($proto, $mode, $ssl),
				SSL => $ssl);
			$s->expect($greeting{$proto}, "$what: greeting");
			capability($s, $proto, $ssl ? $caps{$proto}{tls} : $caps{$proto}{$mode},
				"$what: capabilities");

			my ($reply, $tag) = starttls_cmd($s, $proto);
			if ($ssl || $mode eq 'off') {
				# not offered, or already under TLS
				$s->expect($invalid{$proto}->($tag), "$what: starttls refused");
				next;
			}
			$s->expect($reply, "$what: starttls reply");
			$s->start_tls;
			ok($s->is_tls, "$what: handshake after starttls");
			capability($s, $proto, $caps{$proto}{tls}, "$what: capabilities under TLS");
		}
	}
}

# --- starttls only: logins refused before TLS ----------------------------------

my $before = () = auth_requests();

my $s = Test::Postern::IMAP->new(port => grid_port('imap', 'only', 0));
$s->expect($greeting{imap}, 'imap only: greeting');
my $tag = $s->cmd('LOGIN alice secret');
$s->expect("$tag BAD invalid command\r\n", 'imap only: LOGIN refused');
$tag = $s->cmd('AUTHENTICATE PLAIN ' . encode_base64("\0alice\0secret", ''));
$s->expect("$tag BAD invalid command\r\n", 'imap only: AUTHENTICATE refused');
$s->close;

$s = Test::Postern::POP3->new(port => grid_port('pop3', 'only', 0));
$s->expect($greeting{pop3}, 'pop3 only: greeting');
$s->send('USER alice');
$s->expect("-ERR invalid command\r\n", 'pop3 only: USER refused');
$s->send('AUTH PLAIN ' . encode_base64("\0alice\0secret", ''));
$s->expect("-ERR invalid command\r\n", 'pop3 only: AUTH refused');
$s->close;

$s = Test::Postern::SMTP->new(port => grid_port('smtp', 'only', 0));
$s->expect($greeting{smtp}, 'smtp only: greeting');
$s->send('EHLO client.test');
$s->expect($caps{smtp}{only}, 'smtp only: ehlo');
$s->send('AUTH PLAIN ' . encode_base64("\0alice\0secret", ''));
$s->expect("500 5.5.1 Invalid command\r\n", 'smtp only: AUTH refused');
$s->send('MAIL FROM:<alice@example.test>');
$s->expect("530 5.7.1 Authentication required\r\n", 'smtp only: MAIL refused');
$s->close;

is(scalar(() = auth_requests()), $before, 'only: nothing reached auth_http');

# --- plaintext pipelined after STARTTLS is discarded -----------------------------

for my $proto (@protos) {
	my $s = $client{$proto}->new(port => grid_port($proto, 'on', 0));
	$s->expect($greeting{$proto}, "$proto injection: greeting");
	my ($reply, $inject);
	if ($proto eq 'imap') {
		$reply = "a1 OK completed\r\n";
		$inject = "a1 STARTTLS\r\na2 LOGIN injected secret\r\n";
	} elsif ($proto eq 'pop3') {
		$reply = "+OK\r\n";
		$inject = "STLS\r\nUSER injected\r\nPASS secret\r\n";
	} else {
		$s->send('EHLO client.test');
		$s->expect($caps{smtp}{on}, 'smtp injection: ehlo');
		$reply = "220 2.0.0 Start TLS\r\n";
		$inject = "STARTTLS\r\nAUTH PLAIN "
			. encode_base64("\0injected\0secret", '') . "\r\n";
	}
	# one write: the command and the injection arrive together
	$s->write($inject);
	$s->{tag} = 1;
	$s->expect($reply, "$proto injection: starttls reply, nothing more");
	$s->start_tls;
	capability($s, $proto, $caps{$proto}{tls},
		"$proto injection: clean session under TLS");
	login($s, $proto, 'alice', "$proto injection: login under TLS");
	my @users = map { $_->{h}{'auth-user'} // '' } auth_requests();
	ok(!grep({ $_ eq 'injected' } @users),
		"$proto injection: the injected login never reached auth_http");
	$s->close;
}

# --- full logins: STARTTLS and implicit TLS, relayed to plain backends ------------

# Logs in as $user and checks the relayed reply of the backend.
sub login {
	my ($s, $proto, $user, $name) = @_;
	if ($proto eq 'imap') {
		my $tag = $s->cmd("LOGIN $user secret");
		$s->expect("$tag OK backend welcome\r\n", $name);
	} elsif ($proto eq 'pop3') {
		$s->send("USER $user");
		$s->expect("+OK\r\n", "$name (USER)");
		$s->send('PASS secret');
		$s->expect("+OK backend welcome\r\n", $name);
	} else {
		$s->send('AUTH PLAIN ' . encode_base64("\0$user\0secret", ''));
		$s->expect("235 2.0.0 OK\r\n", $name);
	}
}

sub echo {
	my ($s, $proto, $text, $name) = @_;
	if ($proto eq 'imap') {
		my $tag = $s->cmd("ECHO $text");
		$s->expect("$tag $text\r\n", $name);
	} else {
		$s->send("ECHO $text");
		$s->expect("$text\r\n", $name);
	}
}

for my $proto (@protos) {
	for my $how ('starttls', 'implicit') {
		my $what = "$proto $how";
		my $user = "u$proto$how";
		my $s;
		if ($how eq 'starttls') {
			$s = $client{$proto}->new(port => grid_port($proto, 'only', 0));
			$s->expect($greeting{$proto}, "$what: greeting");
			$s->send('EHLO client.test'), $s->read if $proto eq 'smtp';
			my ($reply) = starttls_cmd($s, $proto);
			$s->expect($reply, "$what: starttls");
			$s->start_tls;
			$s->send('EHLO client.test'), $s->read if $proto eq 'smtp';
		} else {
			$s = $client{$proto}->new(port => grid_port($proto, 'off', 1), SSL => 1);
			$s->expect($greeting{$proto}, "$what: greeting");
			$s->send('EHLO client.test'), $s->read if $proto eq 'smtp';
		}
		login($s, $proto, $user, "$what: login relayed");
		my $text = "data-$proto-$how";
		echo($s, $proto, $text, "$what: data relayed both ways");

		my ($req) = grep { ($_->{h}{'auth-user'} // '') eq $user } auth_requests();
		is($req && $req->{h}{'auth-ssl'}, 'on', "$what: Auth-SSL: on");
		my $log = $t->read_file("backend_$proto.log") // '';
		like($log, qr/^<< (?:\S+ )?ECHO \Q$text\E$/m, "$what: the backend got the data");
		$s->close;
	}
}

# A login over plain text has no Auth-SSL header.
$s = Test::Postern::IMAP->new(port => grid_port('imap', 'on', 0));
$s->expect($greeting{imap}, 'plain: greeting');
login($s, 'imap', 'plainuser', 'plain: login');
my ($req) = grep { ($_->{h}{'auth-user'} // '') eq 'plainuser' } auth_requests();
ok($req && !exists $req->{h}{'auth-ssl'}, 'plain: no Auth-SSL header');
$s->close;

# --- the deprecated "ssl on;" -------------------------------------------------------

{
	my @args = ('-p', "$dir/", '-c', 'postern.conf', '-e', 'error.log', '-t');
	my $r = $t->run_binary(@args);
	my $conf = "$dir/postern.conf";
	my @lines = split /\n/, $t->read_file('postern.conf');
	my ($line) = grep { $lines[$_ - 1] =~ /^\s*ssl on;/ } 1 .. @lines;
	my $name = Test::Postern::binary_name();
	like($r->{stderr}, qr/^\Q$name: [warn] the "ssl" directive is deprecated, use the "listen ... ssl" directive instead in $conf:$line\E$/m,
		'ssl on: the deprecation warning');
	like($r->{stderr}, qr/test is successful/, 'ssl on: the configuration is fine');
}

for my $n (18, 19) {
	my $s = Test::Postern::IMAP->new(port => $t->port($n), SSL => 1);
	ok($s->is_tls, "ssl on: implicit TLS on listen $n");
	$s->expect($greeting{imap}, "ssl on: greeting under TLS on listen $n");
	capability($s, 'imap', $caps{imap}{tls}, "ssl on: capabilities on listen $n");
	$s->close;
}

# --- a client writing right after the implicit-TLS handshake ------------------------

# The command is sent before the greeting was read; both must arrive
# promptly.  The client talks through a relay that holds what the client
# sends for 100ms and passes it on in one write, so that the client's
# last handshake message and its first command reach the server together
# (as they do over a real network): a server that finishes the handshake
# without looking at what else was read leaves the command unread.  Stock
# nginx 1.22 can leave such a connection unread until the timeout (its
# defect that Postern must not copy): for nginx this is TODO.
sub coalescing_relay {
	my ($listen, $target) = @_;
	my $server = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$listen",
		Listen => 8, ReuseAddr => 1) or die "relay listen: $!\n";
	while (my $c = $server->accept) {
		my $u = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$target")
			or next;
		my $sel = IO::Select->new($c, $u);
		my $open = 1;
		while ($open) {
			for my $h ($sel->can_read(10)) {
				my $n = sysread($h, my $buf, 65536);
				if (!$n) { $open = 0; last; }
				if ($h == $c) {
					# gather what follows within 100ms
					my $w = IO::Select->new($c);
					while ($w->can_read(0.1)) {
						my $more = sysread($c, my $b2, 65536);
						if (!$more) { $open = 0; last; }
						$buf .= $b2;
					}
					syswrite($u, $buf);
				} else {
					syswrite($c, $buf);
				}
			}
		}
		close $c;
		close $u;
	}
}

require IO::Select;
my %relay;
for my $i (0 .. $#protos) {
	$relay{$protos[$i]} = $t->port(40 + $i);
	$t->run_daemon(\&coalescing_relay, $relay{$protos[$i]},
		grid_port($protos[$i], 'off', 1));
}
$t->waitforsocket("127.0.0.1:$_") for values %relay;

for my $proto (@protos) {
	my ($stalls, $wrong) = (0, 0);
	my $cmd = { imap => "a1 NOOP\r\n", pop3 => "NOOP\r\n", smtp => "NOOP\r\n" }->{$proto};
	my $want = $greeting{$proto}
		. { imap => "a1 OK completed\r\n", pop3 => "+OK\r\n",
			smtp => "250 2.0.0 OK\r\n" }->{$proto};
	for (1 .. 5) {
		my $s = $client{$proto}->new(port => $relay{$proto}, SSL => 1,
			timeout => 2);
		$s->write($cmd);
		my $started = time;
		my $got = $s->read_bytes(length $want);
		$stalls++ if time - $started > 1.5;
		$wrong++ if $got ne $want;
		$s->close;
	}
	TODO: {
		local $TODO = 'nginx may leave the early data unread' if $nginx;
		is($stalls, 0, "$proto: early writer after the handshake never stalls");
		is($wrong, 0, "$proto: early writer gets the greeting and the answer");
	}
}

# --- handshake timeout --------------------------------------------------------------

{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(20))
		or die "connect: $!\n";
	my $started = time;
	my $n = eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm 5;
		my $n = sysread($s, my $buf, 100);
		alarm 0;
		$n;
	};
	my $took = time - $started;
	is($n, 0, 'implicit TLS without ClientHello: closed');
	ok($took > 0.8 && $took < 3, 'implicit TLS without ClientHello: closed after the 1s timeout')
		or diag("took $took");
}

{
	my $s = Test::Postern::POP3->new(port => $t->port(21));
	$s->expect($greeting{pop3}, 'stls timeout: greeting');
	$s->send('STLS');
	$s->expect("+OK\r\n", 'stls timeout: stls reply');
	my $started = time;
	$s->closed('STLS without ClientHello: closed');
	my $took = time - $started;
	ok($took > 0.8 && $took < 3, 'STLS without ClientHello: closed after the 1s timeout')
		or diag("took $took");
}

$t->stop();
