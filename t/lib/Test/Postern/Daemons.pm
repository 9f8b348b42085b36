package Test::Postern::Daemons;

# Small Perl daemons for Test::Postern->run_daemon: an auth_http service
# and IMAP, POP3 and SMTP backends that accept any login.  Each serves one
# connection at a time, which is enough for the tests.

use strict;
use warnings;

use IO::Socket::INET;

sub listener {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(
		LocalAddr => "127.0.0.1:$port", Listen => 16, ReuseAddr => 1,
		Proto => 'tcp',
	);
	die "listen on $port: $!\n" unless $s;
	return $s;
}

# auth_http: answers OK and points each protocol to its backend port
# ($backends = { imap => port, pop3 => port, smtp => port }).  A password
# "bad" gets "Auth-Status: Invalid login or password".  Every request is
# appended to $log_file (if given), a blank line after each.
sub auth_http {
	my ($port, $backends, $log_file) = @_;
	my $server = listener($port);

	while (my $c = $server->accept) {
		$c->autoflush(1);
		my ($request, %h) = ('');
		while (defined(my $line = <$c>)) {
			$request .= $line;
			last if $line eq "\r\n";
			$h{lc $1} = $2 if $line =~ /^([\w-]+): (.*?)\r\n$/;
		}
		if (defined $log_file && open my $fh, '>>', $log_file) {
			print $fh $request;
			close $fh;
		}

		my $proto = $h{'auth-protocol'} // '';
		if (($h{'auth-pass'} // '') eq 'bad') {
			print $c "HTTP/1.0 200 OK\r\n"
				. "Auth-Status: Invalid login or password\r\n"
				. "Auth-Wait: 1\r\n\r\n";
		} else {
			print $c "HTTP/1.0 200 OK\r\n"
				. "Auth-Status: OK\r\n"
				. "Auth-Server: 127.0.0.1\r\n"
				. "Auth-Port: " . ($backends->{$proto} // 1) . "\r\n\r\n";
		}
		close $c;
	}
}

# IMAP: any LOGIN works; "FETCH" returns a literal "hello"; LOGOUT closes.
sub imap_backend {
	my ($port) = @_;
	my $server = listener($port);

	while (my $c = $server->accept) {
		$c->autoflush(1);
		print $c "* OK backend ready\r\n";
		while (defined(my $line = imap_read_command($c))) {
			my ($tag, $cmd) = $line =~ /^(\S+) (\S+)/ or last;
			$cmd = uc $cmd;
			if ($cmd eq 'LOGOUT') {
				print $c "* BYE\r\n$tag OK LOGOUT completed\r\n";
				last;
			} elsif ($cmd eq 'FETCH') {
				print $c "* 1 FETCH (BODY[] {5}\r\nhello)\r\n"
					. "$tag OK FETCH completed\r\n";
			} elsif ($cmd eq 'CAPABILITY') {
				print $c "* CAPABILITY IMAP4rev1 BACKEND\r\n"
					. "$tag OK CAPABILITY completed\r\n";
			} else {
				print $c "$tag OK $cmd completed\r\n";
			}
		}
		close $c;
	}
}

# A command line with its synchronizing literals ({n}) acknowledged by a
# "+ " continuation and folded in.
sub imap_read_command {
	my ($c) = @_;
	my $line = <$c> // return undef;
	while ($line =~ /\{(\d+)\}\r\n\z/) {
		print $c "+ go ahead\r\n";
		read($c, my $literal, $1) == $1 or return undef;
		my $rest = <$c> // return undef;
		$line .= $literal . $rest;
	}
	return $line;
}

# POP3: USER/PASS accepted; LIST returns two messages; QUIT closes.
sub pop3_backend {
	my ($port) = @_;
	my $server = listener($port);

	while (my $c = $server->accept) {
		$c->autoflush(1);
		print $c "+OK backend ready\r\n";
		while (defined(my $line = <$c>)) {
			my ($cmd) = $line =~ /^(\S+)/ or last;
			$cmd = uc $cmd;
			if ($cmd eq 'QUIT') {
				print $c "+OK bye\r\n";
				last;
			} elsif ($cmd eq 'LIST') {
				print $c "+OK 2 messages\r\n1 100\r\n2 200\r\n.\r\n";
			} else {
				print $c "+OK\r\n";
			}
		}
		close $c;
	}
}

# SMTP: a multi-line EHLO reply, everything else accepted; QUIT closes.
sub smtp_backend {
	my ($port) = @_;
	my $server = listener($port);

	while (my $c = $server->accept) {
		$c->autoflush(1);
		print $c "220 backend ESMTP\r\n";
		while (defined(my $line = <$c>)) {
			my ($cmd) = $line =~ /^(\S+)/ or last;
			$cmd = uc $cmd;
			if ($cmd eq 'QUIT') {
				print $c "221 bye\r\n";
				last;
			} elsif ($cmd eq 'EHLO') {
				print $c "250-backend\r\n250-8BITMIME\r\n250 XCLIENT ADDR NAME\r\n";
			} elsif ($cmd eq 'XCLIENT') {
				print $c "220 backend ESMTP\r\n";
			} elsif ($cmd eq 'DATA') {
				print $c "354 go ahead\r\n";
				while (defined(my $l = <$c>)) {
					last if $l eq ".\r\n";
				}
				print $c "250 queued\r\n";
			} else {
				print $c "250 ok\r\n";
			}
		}
		close $c;
	}
}

1;
