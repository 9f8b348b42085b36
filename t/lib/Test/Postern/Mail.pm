package Test::Postern::Mail;

# The line-oriented client shared by the IMAP, POP3 and SMTP test clients:
# a TCP (optionally TLS) connection with timeouts, CRLF lines, STARTTLS.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More ();

our $TIMEOUT = 5;

# new(PeerAddr => 'host:port' | '[v6addr]:port' | 'unix:/path' | port => n,
#     LocalAddr => 'addr', SSL => 1, timeout => s,
#     SSL_* => ... passed to IO::Socket::SSL)
sub new {
	my ($class, %args) = @_;

	my $peer = delete $args{PeerAddr}
		// '127.0.0.1:' . (delete $args{port} // die "no port\n");
	my $ssl = delete $args{SSL};
	my $timeout = delete $args{timeout} // $TIMEOUT;
	# LocalAddr: the client's own address (e.g. 127.0.0.2 for a second
	# client on loopback)
	my @local = defined $args{LocalAddr}
		? (LocalAddr => delete $args{LocalAddr}) : ();

	my $sock;
	if ($peer =~ m{^unix:(.*)}) {
		require IO::Socket::UNIX;
		$sock = IO::Socket::UNIX->new(Peer => $1);
	} elsif ($peer =~ /^\[/) {
		# "[::1]:port": IPv6
		require IO::Socket::IP;
		$sock = IO::Socket::IP->new(PeerAddr => $peer, Timeout => $timeout,
			@local);
	} else {
		$sock = IO::Socket::INET->new(PeerAddr => $peer, Timeout => $timeout,
			@local);
	}
	die "connect to $peer: $!\n" unless $sock;

	my $self = bless { sock => $sock, timeout => $timeout, tag => 0 }, $class;
	$self->start_tls(%args) if $ssl;
	return $self;
}

sub socket { $_[0]->{sock} }

# Upgrades the connection to TLS (implicit TLS or after STARTTLS/STLS).
# Certificates are not verified unless the caller asks for it.
sub start_tls {
	my ($self, %args) = @_;
	require IO::Socket::SSL;
	my %opts = (
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		Timeout => $self->{timeout},
		map { $_ => $args{$_} } grep { /^SSL_/ } keys %args,
	);
	IO::Socket::SSL->start_SSL($self->{sock}, %opts)
		or die "TLS handshake: " . IO::Socket::SSL::errstr() . "\n";
	return $self;
}

sub is_tls { return $_[0]->{sock}->isa('IO::Socket::SSL') ? 1 : 0 }

# Writes raw bytes.
sub write {
	my ($self, $data) = @_;
	my $sock = $self->{sock};
	local $SIG{PIPE} = 'IGNORE';
	return $sock->syswrite($data) == length $data
		if !$self->is_tls;
	return print $sock $data;
}

# Sends one command line; CRLF is added.
sub send {
	my ($self, $line) = @_;
	Test::More::note("> $line") if $ENV{TEST_POSTERN_VERBOSE};
	return $self->write("$line\r\n");
}

# One line including its CRLF, or undef on timeout or EOF.
sub getline {
	my ($self) = @_;
	my $sock = $self->{sock};
	my $line;
	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm $self->{timeout};
		$line = $sock->getline;
		alarm 0;
	};
	alarm 0;
	Test::More::note("< " . ($line // '(none)')) if $ENV{TEST_POSTERN_VERBOSE};
	return $line;
}

# Exactly $n bytes (for literals), or what arrived before timeout/EOF.
sub read_bytes {
	my ($self, $n) = @_;
	my $sock = $self->{sock};
	my $buf = '';
	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm $self->{timeout};
		while (length $buf < $n) {
			my $got = $sock->read(my $chunk, $n - length $buf);
			last unless $got;
			$buf .= $chunk;
		}
		alarm 0;
	};
	alarm 0;
	return $buf;
}

# True when the server closed the connection (EOF within the timeout).
sub eof {
	my ($self) = @_;
	my $line = $self->getline;
	return !defined $line && $self->{sock}->eof ? 1 : 0;
}

# Reads one reply (protocol-specific) and checks it against a regex.
sub check {
	my ($self, $re, $name) = @_;
	my $reply = $self->read;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::like($reply // '', $re, $name);
}

# Reads exactly as many bytes as $expected has and compares them: replies
# are checked byte for byte, and a missing or extra byte shows in the next
# check.
sub expect {
	my ($self, $expected, $name) = @_;
	my $got = $self->read_bytes(length $expected);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::is($got, $expected, $name);
}

# Passes when the server closes the connection without sending anything more.
sub closed {
	my ($self, $name) = @_;
	my $line = $self->getline;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::ok(!defined $line && $self->{sock}->eof, $name)
		|| Test::More::diag('got ' . ($line // '(timeout)'));
}

# True when the binary under test is stock nginx older than $version
# ("1.29.0"): for replies that changed between the Debian nginx the tests
# run against and the nginx release Postern follows.
sub nginx_older_than {
	my ($version) = @_;
	require Test::Postern;
	return 0 unless Test::Postern::is_nginx();
	my $bin = Test::Postern::binary();
	my ($v) = `$bin -v 2>&1` =~ m{nginx/(\d+\.\d+\.\d+)} or return 0;
	my @have = split /\./, $v;
	my @want = split /\./, $version;
	for my $i (0 .. 2) {
		return $have[$i] < $want[$i] ? 1 : 0 if $have[$i] != $want[$i];
	}
	return 0;
}

sub close {
	my ($self) = @_;
	CORE::close($self->{sock});
}

1;
