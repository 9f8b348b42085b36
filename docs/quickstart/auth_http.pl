#!/usr/bin/perl
# A reference auth_http service for Postern (and nginx's mail proxy).
#
# Postern asks this service, for every login, whether the user may log in
# and where the user's mailbox lives. The request is an HTTP/1.0 GET whose
# headers describe the login (Auth-User, Auth-Pass, Auth-Protocol,
# Auth-Method, Auth-Login-Attempt, Client-IP, ...); the answer is an empty
# response whose headers say what to do:
#
#   Auth-Status: OK            Auth-Server: 127.0.0.1   Auth-Port: 10143
#   Auth-Status: Invalid login or password   Auth-Wait: 3
#
# This one knows a fixed table of users and one backend per protocol. To
# adapt it, replace %users and %backends with a look-up in your directory
# (LDAP, SQL, ...); keep answering quickly (Postern waits at most
# auth_http_timeout) and never log passwords.
#
# Usage: auth_http.pl [port] [users-file]
#   users-file lines: "name:password" (the quickstart writes one).

use strict;
use warnings;
use IO::Socket::INET;

my $port = shift // 9180;
my $users_file = shift;

my %users = (demo => 'demo');
if (defined $users_file) {
    open my $fh, '<', $users_file or die "$users_file: $!\n";
    %users = ();
    while (<$fh>) {
        chomp;
        my ($name, $pass) = split /:/, $_, 2;
        $pass =~ s/^\{PLAIN\}// if defined $pass;
        $users{$name} = $pass if defined $pass;
    }
}

my %backends = (
    imap => ['127.0.0.1', 10143],
    pop3 => ['127.0.0.1', 10110],
);

my $server = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => $port,
    Listen    => 64,
    ReuseAddr => 1,
) or die "cannot listen on 127.0.0.1:$port: $@\n";

$SIG{PIPE} = 'IGNORE';
print STDERR "auth_http: listening on 127.0.0.1:$port\n";

while (my $client = $server->accept()) {
    $client->timeout(5);
    my %h;
    while (my $line = <$client>) {
        $line =~ s/\r?\n$//;
        last if $line eq '';
        $h{lc $1} = $2 if $line =~ /^([^:]+):\s*(.*)$/;
    }
    print $client answer(\%h);
    close $client;
}

# Percent-decode a header value (Postern escapes control bytes, spaces and %).
sub unescape {
    my ($v) = @_;
    $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $v;
}

sub answer {
    my ($h) = @_;
    my $user = unescape($h->{'auth-user'} // '');
    my $pass = unescape($h->{'auth-pass'} // '');
    my $protocol = $h->{'auth-protocol'} // '';
    my $attempt = $h->{'auth-login-attempt'} // 1;

    my $backend = $backends{$protocol};
    my $ok = defined $backend && defined $users{$user}
        && ($h->{'auth-method'} // '') =~ /^(plain|login)$/
        && $users{$user} eq $pass;

    printf STDERR "auth_http: %s login \"%s\" from %s: %s\n",
        $protocol, $user, $h->{'client-ip'} // '-', $ok ? 'OK' : 'refused';

    if ($ok) {
        return "HTTP/1.0 200 OK\r\n"
            . "Auth-Status: OK\r\n"
            . "Auth-Server: $backend->[0]\r\n"
            . "Auth-Port: $backend->[1]\r\n\r\n";
    }

    # Ask the client to wait before retrying, longer after each failure;
    # after ten attempts give up without a retry.
    my $wait = $attempt < 10 ? "Auth-Wait: " . ($attempt > 3 ? 3 : $attempt) . "\r\n" : '';
    return "HTTP/1.0 200 OK\r\n"
        . "Auth-Status: Invalid login or password\r\n"
        . $wait . "\r\n";
}
