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

# --- scriptable daemons for the session tests ------------------------------

# A listening socket on a TCP port of 127.0.0.1 or on "unix:/path".
sub listen_on {
	my ($where) = @_;
	return listener($where) unless $where =~ /^unix:(.*)/;
	my $path = $1;
	require IO::Socket::UNIX;
	unlink $path;
	my $s = IO::Socket::UNIX->new(Local => $path, Listen => 16)
		or die "listen on $path: $!\n";
	chmod 0777, $path;
	return $s;
}

# Appends $text to $file at once (the tests poll these files).
sub record {
	my ($file, $text) = @_;
	return unless defined $file;
	open my $fh, '>>', $file or return;
	binmode $fh;
	print $fh $text;
	close $fh;
}

# An auth_http service whose answers are chosen by the test:
# $respond->(\%headers, $request) returns the bytes to answer (the whole
# HTTP response), undef to close without answering, or a code ref called
# with the client socket (to answer slowly, in pieces, ...).  Header names
# are lower-cased in %headers.  Each request is appended to $log_file
# exactly as received, followed by a line "--" (so "\r\n\r\n--\n").
sub auth_http_scripted {
	my ($where, $log_file, $respond) = @_;
	my $server = listen_on($where);
	local $SIG{PIPE} = 'IGNORE';

	while (my $c = $server->accept) {
		$c->autoflush(1);
		my ($request, %h) = ('');
		while (defined(my $line = <$c>)) {
			$request .= $line;
			last if $line eq "\r\n";
			$h{lc $1} = $2 if $line =~ /^([^:\s]+): (.*?)\r\n$/;
		}
		# a bare connect (a readiness probe) is not a request
		next if $request eq '';
		record($log_file, "$request--\n");

		my $r = $respond->(\%h, $request);
		if (ref $r eq 'CODE') {
			$r->($c);
		} elsif (defined $r) {
			print $c $r;
		}
		close $c;
	}
}

# The requests an auth_http_scripted daemon recorded so far: a list of
# { raw => request text, h => { lower-case name => value } }.
sub auth_requests {
	my ($log_file) = @_;
	open my $fh, '<', $log_file or return ();
	binmode $fh;
	local $/;
	my $all = <$fh> // '';
	close $fh;
	my @requests;
	for my $raw (split /(?<=\r\n\r\n)--\n/, $all) {
		my %h;
		$h{lc $1} = $2 while $raw =~ /^([^:\s]+): (.*?)\r$/mg;
		push @requests, { raw => $raw, h => \%h };
	}
	return @requests;
}

# The common answer: OK with server and port (and any extra headers).
sub auth_ok {
	my ($port, @extra) = @_;
	return "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
		. "Auth-Server: 127.0.0.1\r\nAuth-Port: $port\r\n"
		. join('', map { "$_\r\n" } @extra) . "\r\n";
}

sub auth_fail {
	my ($text, @extra) = @_;
	return "HTTP/1.0 200 OK\r\nAuth-Status: $text\r\n"
		. join('', map { "$_\r\n" } @extra) . "\r\n";
}

# Reads a PROXY protocol header if the peer sends one first; returns its
# description ("v1 <line without CRLF>" or "v2 <hex of all bytes>") or ''
# when the connection starts with something else (which is kept in $$pending).
sub read_proxy_header {
	my ($c, $pending) = @_;
	$$pending = '';
	my $sig = "\r\n\r\n\0\r\nQUIT\n";
	my $first = '';
	# the backend speaks first in every mail protocol, so the proxy has
	# nothing to send before the header except the header itself: wait
	# briefly for it
	my $rin = '';
	vec($rin, fileno($c), 1) = 1;
	return '' unless select(my $rout = $rin, undef, undef, 0.5);
	sysread($c, $first, 6) or return '';
	if ($first eq 'PROXY ') {
		my $line = $first;
		while ($line !~ /\r\n\z/) {
			sysread($c, my $ch, 1) or last;
			$line .= $ch;
		}
		$line =~ s/\r\n\z//;
		return "v1 $line";
	}
	if ($first eq substr($sig, 0, 6)) {
		my $head = $first;
		while (length $head < 16) {
			sysread($c, my $buf, 16 - length $head) or last;
			$head .= $buf;
		}
		my $len = unpack('n', substr($head, 14, 2));
		my $body = '';
		while (length $body < $len) {
			sysread($c, my $buf, $len - length $body) or last;
			$body .= $buf;
		}
		return 'v2 ' . unpack('H*', $head . $body);
	}
	$$pending = $first;
	return '';
}

# A mail backend for imap, pop3 or smtp that records every line it reads in
# $log_file ("<< line" lines, CRLF stripped, plus "connect", "proxy <hdr>",
# "eof" events) and answers as a real server would, with behaviour chosen
# by the login name (see the comments inside).  After login:
#   ECHO <text>      -> "<text>"
#   BIG <n>          -> n bytes of "x" in lines of 76 plus CRLF, then "END"
#   EXACT <n>        -> exactly n bytes ("0123456789abcdef" repeated), nothing else
#   UPLOAD <n>       -> reads n raw bytes, answers "GOT <n> <sum>"
#   BYE              -> "BYE" and close
sub mail_backend {
	my ($port, $proto, $log_file, %opts) = @_;
	my $server = listen_on($port);
	local $SIG{PIPE} = 'IGNORE';

	while (my $c = $server->accept) {
		$c->autoflush(1);
		record($log_file, "connect\n");
		my $pending;
		my $pp = read_proxy_header($c, \$pending);
		record($log_file, "proxy $pp\n") if length $pp;

		my $greeting = $opts{greeting} // {
			imap => "* OK backend IMAP ready\r\n",
			pop3 => "+OK backend POP3 ready\r\n",
			smtp => "220 backend.test ESMTP ready\r\n",
		}->{$proto};
		print $c $greeting;

		my $logged_in = 0;
		my $login = '';
		my $buffered = $pending;
		my $readline = sub {
			my $line = $buffered;
			$buffered = '';
			while ($line !~ /\n/) {
				my $n = sysread($c, my $buf, 65536);
				return undef unless $n;
				$line .= $buf;
			}
			my $at = index($line, "\n") + 1;
			$buffered = substr($line, $at);
			return substr($line, 0, $at);
		};
		my $readbytes = sub {
			my ($n) = @_;
			my $data = substr($buffered, 0, $n, '');
			while (length $data < $n) {
				my $got = sysread($c, my $buf, $n - length $data);
				return $data unless $got;
				$data .= $buf;
			}
			return $data;
		};

		while (defined(my $line = $readline->())) {
			# IMAP synchronizing literals of LOGIN
			while ($proto eq 'imap' && $line =~ /\{(\d+)\}\r\n\z/) {
				print $c "+ go ahead\r\n";
				$line .= $readbytes->($1);
				$line .= $readline->() // '';
			}
			(my $shown = $line) =~ s/\r\n\z//;
			record($log_file, "<< $shown\n");

			if ($logged_in || $proto eq 'smtp'
				&& $shown !~ /^(?:EHLO|HELO|XCLIENT|AUTH|MAIL FROM:|RCPT TO:)/i)
			{
				my ($tag, $rest) = ('', $shown);
				($tag, $rest) = ("$1 ", $2) if $proto eq 'imap'
					&& $shown =~ /^(\S+) (.*)$/;
				if ($rest =~ /^ECHO (.*)/) {
					print $c "$tag$1\r\n";
				} elsif ($rest =~ /^BIG (\d+)/) {
					my $left = $1;
					my $out = '';
					while ($left > 0) {
						my $k = $left > 76 ? 76 : $left;
						$out .= ('x' x $k) . "\r\n";
						$left -= $k;
					}
					print $c $out . "${tag}END\r\n";
				} elsif ($rest =~ /^EXACT (\d+)/) {
					# exactly n bytes, nothing after them; syswrite, not
					# print: PerlIO would split them into 8 KB writes that
					# Nagle and delayed ACKs hold up for 40 ms
					my $out = substr('0123456789abcdef' x (int($1 / 16) + 1), 0, $1);
					while (length $out) {
						my $w = syswrite($c, $out) // last;
						substr($out, 0, $w, '');
					}
				} elsif ($rest =~ /^UPLOAD (\d+)/) {
					my $data = $readbytes->($1);
					my $sum = unpack('%32C*', $data);
					print $c "${tag}GOT " . length($data) . " $sum\r\n";
				} elsif ($rest =~ /^BYE/) {
					print $c "${tag}BYE\r\n";
					last;
				} elsif ($rest =~ /^(?:QUIT|LOGOUT)/i) {
					print $c +{
						imap => "* BYE\r\n${tag}OK LOGOUT completed\r\n",
						pop3 => "+OK bye\r\n",
						smtp => "221 bye\r\n",
					}->{$proto};
					last;
				} else {
					print $c +{
						imap => "${tag}OK done\r\n",
						pop3 => "+OK done\r\n",
						smtp => "250 done\r\n",
					}->{$proto};
				}
				next;
			}

			my $reply;
			if ($proto eq 'imap') {
				my ($tag, $cmd, $user) = $shown =~ /^(\S+) (\S+) ?(\S*)/;
				$tag //= '*';
				$user = $1 if $shown =~ /^\S+ \S+ \{\d+\}\r\n(.*?) /s;
				$user =~ s/^"(.*)"$/$1/ if defined $user;
				$login = $user // '';
				if (uc($cmd // '') ne 'LOGIN') {
					$reply = "$tag BAD expected LOGIN\r\n";
				} elsif ($login eq 'reject') {
					# a backend refusing the login
					$reply = "$tag NO [AUTHENTICATIONFAILED] backend says no\r\n";
				} elsif ($login eq 'untagged') {
					# an untagged CAPABILITY before the tagged OK
					$reply = "* CAPABILITY IMAP4rev1 BACKEND\r\n"
						. "$tag OK backend welcome\r\n";
					$logged_in = 1;
				} else {
					$reply = "$tag OK backend welcome\r\n";
					$logged_in = 1;
				}
			} elsif ($proto eq 'pop3') {
				if ($shown =~ /^USER (.*)/) {
					$login = $1;
					$reply = $login eq 'rejectuser'
						? "-ERR backend says no user\r\n" : "+OK\r\n";
				} elsif ($shown =~ /^PASS /) {
					if ($login eq 'reject') {
						$reply = "-ERR [AUTH] backend says no\r\n";
					} else {
						$reply = "+OK backend welcome\r\n";
						$logged_in = 1;
					}
				} else {
					$reply = "-ERR expected USER/PASS\r\n";
				}
			} else {
				if ($shown =~ /^EHLO/i) {
					$reply = $opts{ehlo_reply}
						// "250-backend.test\r\n250-PIPELINING\r\n"
						. "250-XCLIENT ADDR LOGIN NAME HELO\r\n"
						. "250 8BITMIME\r\n";
					$reply = "502 no EHLO here\r\n" if $opts{no_ehlo};
				} elsif ($shown =~ /^HELO/i) {
					$reply = "250 backend.test\r\n";
				} elsif ($shown =~ /^XCLIENT/i) {
					$reply = $opts{xclient_reply} // "220 backend.test ESMTP ready\r\n";
				} elsif ($shown =~ /^AUTH PLAIN (\S+)/i) {
					require MIME::Base64;
					my (undef, $user) = split /\0/, MIME::Base64::decode_base64($1);
					$reply = ($user // '') eq 'reject'
						? "535 5.7.8 backend says no\r\n"
						: "235 2.7.0 backend welcome\r\n";
					$logged_in = 1 if $reply =~ /^235/;
				} elsif ($shown =~ /^MAIL FROM:/i) {
					$reply = $shown =~ /reject/
						? "550 5.1.0 backend rejects sender\r\n"
						: "250 2.1.0 sender ok\r\n";
				} else {
					$reply = "250 2.1.5 recipient ok\r\n";
				}
			}
			print $c $reply;
		}
		record($log_file, "eof\n");
		close $c;
	}
}

1;
