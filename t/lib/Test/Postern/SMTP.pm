package Test::Postern::SMTP;

# SMTP test client: multi-line replies ("250-...", "250 ...") read as one.

use strict;
use warnings;

use base 'Test::Postern::Mail';

# One complete reply: all its lines, up to the one with "NNN " after the
# code.
sub read {
	my ($self) = @_;
	my $reply = '';
	while (defined(my $line = $self->getline)) {
		$reply .= $line;
		last if $line !~ /^\d\d\d-/;
	}
	return length $reply ? $reply : undef;
}

# A 2xx reply.
sub ok {
	my ($self, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::like($self->read // '', qr/^2\d\d /m, $name);
}

# 235: authentication succeeded.
sub authok {
	my ($self, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::like($self->read // '', qr/^235 /m, $name);
}

1;
