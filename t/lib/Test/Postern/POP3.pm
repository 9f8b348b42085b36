package Test::Postern::POP3;

# POP3 test client: +OK/-ERR single-line replies, multi-line replies ended
# by a dot line, and "+ " continuations of AUTH.

use strict;
use warnings;

use base 'Test::Postern::Mail';

sub read {
	my ($self) = @_;
	return $self->getline;
}

# A multi-line reply (CAPA, LIST, RETR): the status line and the lines up
# to the terminating ".", undotted; returns them joined.
sub read_multiline {
	my ($self) = @_;
	my $reply = $self->getline // return undef;
	return $reply unless $reply =~ /^\+OK/;
	while (defined(my $line = $self->getline)) {
		last if $line eq ".\r\n";
		$line =~ s/^\.//;
		$reply .= $line;
	}
	return $reply;
}

sub ok {
	my ($self, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::like($self->read // '', qr/^\+OK\b/, $name);
}

1;
