package Test::Postern::DNS;

# A tiny scripted UDP DNS server for the resolver tests.  See the POD at
# the end for the interface.

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::IP;
use Socket qw(AF_INET AF_INET6 inet_pton);
use Time::HiRes qw(sleep);

our @EXPORT_OK = qw(dns_daemon reverse_name);

my %TYPE = (A => 1, CNAME => 5, PTR => 12, AAAA => 28);
my %TYPE_NAME = reverse %TYPE;
my %RCODE = (NOERROR => 0, FORMERR => 1, SERVFAIL => 2, NXDOMAIN => 3,
	NOTIMP => 4, REFUSED => 5);

# The PTR query name of an address: 4.3.2.1.in-addr.arpa or the 32
# nibbles of an IPv6 address followed by ip6.arpa.
sub reverse_name {
	my ($ip) = @_;
	if ($ip =~ /:/) {
		my $bin = inet_pton(AF_INET6, $ip) // die "bad IPv6 address $ip\n";
		my $hex = unpack('H32', $bin);
		return join('.', reverse split //, $hex) . '.ip6.arpa';
	}
	return join('.', reverse split /\./, $ip) . '.in-addr.arpa';
}

# Normalises the script: keys "name TYPE" with lower-case names, an
# address as the name of a PTR key becomes its reverse name.
sub _script {
	my ($script) = @_;
	my %s;
	for my $key (keys %$script) {
		my ($name, $type) = $key =~ /^(\S+)\s+(\S+)$/
			or die "bad script key \"$key\" (want \"name TYPE\")\n";
		$type = uc $type;
		die "unknown type $type\n" unless $TYPE{$type};
		$name = reverse_name($name)
			if $type eq 'PTR' && $name =~ /^[\d.]+$|:/;
		$name =~ s/\.$//;
		$s{lc($name) . " $type"} = $script->{$key};
	}
	return \%s;
}

sub _parse_query {
	my ($q) = @_;
	return if length $q < 12;
	my $i = 12;
	my @labels;
	while (1) {
		return if $i >= length $q;
		my $len = ord substr($q, $i, 1);
		$i++;
		last if $len == 0;
		return if $len > 63 || $i + $len > length $q;
		push @labels, substr($q, $i, $len);
		$i += $len;
	}
	return if $i + 4 > length $q;
	my ($qtype) = unpack('n', substr($q, $i, 2));
	return (lc(join '.', @labels), $qtype, $i + 4);
}

sub _encode_name {
	my ($name) = @_;
	my $out = '';
	for my $label (grep { length } split /\./, $name) {
		$out .= chr(length $label) . $label;
	}
	return $out . "\0";
}

sub _rdata {
	my ($type, $value) = @_;
	return _encode_name($value) if $type eq 'PTR' || $type eq 'CNAME';
	return inet_pton(AF_INET, $value) // die "bad A value $value\n"
		if $type eq 'A';
	return inet_pton(AF_INET6, $value) // die "bad AAAA value $value\n";
}

# The reply packet for a query, or undef for silence.
sub _reply {
	my ($script, $query, $name, $qtype, $qend) = @_;
	my $type = $TYPE_NAME{$qtype} // '';
	my $known = grep { /^\Q$name\E / } keys %$script;
	my $answer = $script->{"$name $type"};
	$answer = $known ? 'EMPTY' : 'NXDOMAIN' unless defined $answer;

	my ($rcode, $delay, @records) = (0, 0);
	my @values;
	if (ref $answer eq 'HASH') {
		$delay = $answer->{delay} // 0;
		$answer = $answer->{answer};
	}
	if (ref $answer eq 'ARRAY') {
		@values = @$answer;
	} elsif ($answer eq 'SILENT') {
		return (undef, $delay);
	} elsif ($answer eq 'EMPTY') {
		@values = ();
	} elsif (exists $RCODE{$answer}) {
		$rcode = $RCODE{$answer};
	} else {
		@values = ($answer);
	}

	for my $value (@values) {
		my ($rtype, $v) = ($type, $value);
		($rtype, $v) = ('CNAME', $1) if $value =~ /^CNAME\s+(\S+)$/;
		my $rdata = _rdata($rtype, $v);
		push @records, pack('n', 0xc00c) . pack('nnNn', $TYPE{$rtype}, 1,
			60, length $rdata) . $rdata;
	}

	my $id = substr($query, 0, 2);
	my $header = $id . pack('nnnnn', 0x8180 | $rcode, 1, scalar @records,
		0, 0);
	return ($header . substr($query, 12, $qend - 12) . join('', @records),
		$delay);
}

# Serves queries until killed; see the POD.
sub dns_daemon {
	my (%args) = @_;
	my $addr = $args{addr} // '127.0.0.1';
	my $port = $args{port} // die "dns_daemon: port is required\n";
	my $script = _script($args{script} // {});

	my $socket = IO::Socket::IP->new(
		LocalHost => $addr, LocalPort => $port, Proto => 'udp',
		ReuseAddr => 1,
	) or die "dns_daemon: bind $addr:$port: $@\n";

	if (defined $args{ready}) {
		open my $fh, '>', $args{ready} or die "$args{ready}: $!\n";
		close $fh;
	}

	while (1) {
		my $peer = $socket->recv(my $query, 512);
		next unless defined $peer;
		my ($name, $qtype, $qend) = _parse_query($query) or next;
		if (defined $args{log} && open my $fh, '>>', $args{log}) {
			print $fh "$name " . ($TYPE_NAME{$qtype} // $qtype) . "\n";
			close $fh;
		}
		my ($packet, $delay) = _reply($script, $query, $name, $qtype, $qend);
		sleep $delay if $delay;
		$socket->send($packet, 0, $peer) if defined $packet;
	}
}

1;

__END__

=head1 NAME

Test::Postern::DNS - a scripted UDP DNS server for the resolver tests

=head1 SYNOPSIS

    use Test::Postern::DNS qw(dns_daemon);

    my $dns_port = $t->port(8);
    $t->run_daemon(\&dns_daemon,
        port   => $dns_port,
        ready  => $t->testdir . '/dns.ready',
        log    => $t->testdir . '/dns.log',
        script => {
            '127.0.0.1 PTR'     => 'mail.example.test',
            'mail.example.test A' => ['127.0.0.1'],
            'tmp.example.test A'  => 'SERVFAIL',
            'slow.example.test AAAA' => { delay => 2, answer => ['::1'] },
        });
    $t->waitforfile($t->testdir . '/dns.ready');

    # postern.conf:  resolver 127.0.0.1:<dns_port>;  resolver_timeout 1s;

=head1 DESCRIPTION

One process, one UDP socket on C<addr:port> (default address
C<127.0.0.1>; an IPv6 address such as C<::1> works too), answering one
query at a time from a script.  It never forwards anything anywhere.

=head2 Arguments

=over

=item port (required), addr

Where to listen.

=item script

A hash: keys are C<"name TYPE"> with TYPE one of C<PTR>, C<A>, C<AAAA>
(case-insensitive names, a trailing dot is ignored).  For C<PTR>, the
name may be a client address (C<127.0.0.1>, C<::1>); it is turned into
its C<in-addr.arpa> / C<ip6.arpa> name.  Values:

=over

=item a string

The single record: a host name for PTR, an address for A/AAAA.

=item an array reference

Several records (an empty array: a NOERROR answer without records).
An element C<"CNAME target"> adds a CNAME record instead.

=item C<NXDOMAIN>, C<SERVFAIL>, C<REFUSED>, C<NOTIMP>, C<FORMERR>

That response code, no records.

=item C<EMPTY>

NOERROR without records.

=item C<SILENT>

No answer at all (the client times out).

=item C<< { delay => seconds, answer => VALUE } >>

VALUE (any of the above) after a pause; the server answers nothing else
meanwhile.

=back

A query for a name that appears in the script with another type gets
C<EMPTY>; a query for any other name gets C<NXDOMAIN>.  Answers carry a
TTL of 60 seconds, the question is echoed, the flags are QR, RD, RA.

=item log

A file to which each query is appended as C<"name TYPE\n"> (lower-case
name, type name or number), so a test can check what was asked (e.g. no
AAAA with C<ipv6=off>).

=item ready

A file created once the socket is bound: wait for it with
C<< $t->waitforfile >> before starting the binary, as UDP has no
listening state to wait for.

=back

C<reverse_name($address)> is exported on request for tests that check the
log.

=cut
