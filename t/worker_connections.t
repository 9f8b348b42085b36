#!/usr/bin/perl

# worker_connections: when a worker runs out of connections it logs
# nginx's alert and keeps serving once connections are freed.  Holding
# connections open needs mail sessions (Postern closes accepted
# connections until the mail stage lands).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has(qw/proc mail/)->plan(3);

$t->write_file_expand('postern.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events {
    worker_connections 8;
}
mail {
    auth_http 127.0.0.1:%%PORT_9%%/auth;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        protocol imap;
    }
}
EOF

my $port = $t->port(0);
$t->run();

# more sessions than the worker has connections for
my @held = grep { defined } map {
	IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 2)
} 1 .. 12;

ok(wait_until(sub {
	$t->read_file('error.log') =~ /\[alert\] \d+#\d+: 8 worker_connections are not enough\n/;
}), 'alert when connections run out');

close $_ for @held;
@held = ();

my $s;
ok(wait_until(sub {
	$s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 2);
	return $s && defined(my $g = <$s>);
}), 'serving again after connections are freed');
like($t->read_file('error.log'), qr/client 127\.0\.0\.1:\d+ connected to/,
	'sessions were logged');
close $s if $s;
$t->stop();
