#!/usr/bin/perl

# `daemon off` keeps the master in the foreground (systemd Type=simple);
# `master_process off` serves from a single process.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern qw(wait_until);

my $t = Test::Postern->new()->has('proc')->plan(10);

sub conf {
	my ($extra) = @_;
	$t->write_file_expand('postern.conf', <<"EOF");
%%TEST_GLOBALS%%
$extra
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
}

my $port = $t->port(0);

# --- daemon off ----------------------------------------------------------------

conf('daemon off;');
my $pid = $t->run_foreground();
ok($pid, 'daemon off: our child is the master');
ok($t->wait_workers(2), 'daemon off: two workers');
ok($t->waitforsocket("127.0.0.1:$port"), 'daemon off: accepting');

$t->signal('QUIT');
my $status = $t->foreground_status($pid);
is($status, 0, 'daemon off: exit status 0 after QUIT');
ok(!-e $t->pid_file, 'daemon off: pid file removed');

# -g works the same way
conf('');
$pid = $t->run_foreground('-g', 'daemon off;');
ok($t->wait_workers(2), 'daemon off from -g');
$t->signal('TERM');
is($t->foreground_status($pid), 0, 'daemon off: exit status 0 after TERM');

# --- master_process off ----------------------------------------------------------

conf("daemon off;\nmaster_process off;");
$pid = $t->run_foreground();
ok($t->waitforsocket("127.0.0.1:$port"), 'master_process off: accepting');
is(scalar $t->children($pid), 0, 'master_process off: no workers');
$t->signal('QUIT');
is($t->foreground_status($pid), 0, 'master_process off: exit status 0');
