package Test::Postern::IMAP;

# IMAP test client: tagged commands, untagged and continuation responses,
# and literals ({n} and {n+}) folded into the line they belong to.

use strict;
use warnings;

use base 'Test::Postern::Mail';

# Sends "TAG command" with a fresh tag ("a1", "a2", ...); returns the tag.
sub cmd {
	my ($self, $command) = @_;
	my $tag = 'a' . ++$self->{tag};
	$self->send("$tag $command");
	$self->{last_tag} = $tag;
	return $tag;
}

# One response with any literals inside it: the text of the line, the
# literal bytes, and the rest of the line after them.
sub read {
	my ($self) = @_;
	my $line = $self->getline // return undef;
	while ($line =~ /\{(\d+)\+?\}\r\n\z/) {
		$line .= $self->read_bytes($1);
		my $more = $self->getline // last;
		$line .= $more;
	}
	return $line;
}

# Reads responses until the tagged one (the last command's tag unless
# given); returns all of them, the tagged one last.
sub read_tagged {
	my ($self, $tag) = @_;
	$tag //= $self->{last_tag};
	my @lines;
	while (defined(my $line = $self->read)) {
		push @lines, $line;
		last if !defined $tag && $line !~ /^[*+] /;
		last if defined $tag && $line =~ /^\Q$tag\E /;
	}
	return @lines;
}

# Checks that the tagged reply to the last command is OK.
sub ok {
	my ($self, $name) = @_;
	my @lines = $self->read_tagged;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::like($lines[-1] // '', qr/^\S+ OK\b/, $name);
}

1;
