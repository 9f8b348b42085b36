#!/usr/bin/perl

# Broken configurations: the exact [emerg]/[warn] text, file and line, as
# printed by `-t`.  The expectations were taken from stock nginx; Postern
# prints the same with its own name ("postern:" instead of "nginx:").
# Where nginx 1.22 (Debian's reference binary) and mainline 1.31.5 (our
# target) differ, a case carries both texts.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern;

# A valid mail config with a slot for one mail-level (line 4) and one
# server-level (line 8) piece of text.
sub M {
	my ($mail, $server) = @_;
	$mail //= '';
	$server //= '';
	return <<"EOF";
events { }
mail {
    auth_http 127.0.0.1:8080/auth;
    $mail
    server {
        listen 127.0.0.1:8143;
        protocol imap;
        $server
    }
}
EOF
}

# Expected stderr: messages, then the verdict lines of -t.
sub fails { return [@_, 'configuration file %%CONF%% test failed'] }
sub passes {
	return [@_, 'the configuration file %%CONF%% syntax is ok',
		'configuration file %%CONF%% test is successful'];
}

my $E = '[emerg]';
my $W = '[warn]';
my $onoff = 'it must be "on" or "off"';

# [ name, config, expected, { args => [...], postern => expected } ]
my @cases = (
	# --- the language --------------------------------------------------
	['unknown directive', "foo;\nevents { }\n",
		fails(qq|$E unknown directive "foo" in %%CONF%%:1|)],
	['unexpected }', "events { }\n}\n",
		fails(qq|$E unexpected "}" in %%CONF%%:2|)],
	['unexpected {', "events { }\n{\n}\n",
		fails(qq|$E unexpected "{" in %%CONF%%:2|)],
	['unexpected ;', "events { }\n;\n",
		fails(qq|$E unexpected ";" in %%CONF%%:2|)],
	['eof in block', "events { }\nmail {\n",
		fails(qq|$E unexpected end of file, expecting "}" in %%CONF%%:3|)],
	['eof in directive', "events { }\nworker_processes 1\n",
		fails(qq|$E unexpected end of file, expecting ";" or "}" in %%CONF%%:3|)],
	['eof in double quote', "events { }\npid \"abc;\n",
		fails(qq|$E unexpected end of file, expecting ";" or "}" in %%CONF%%:3|)],
	['eof in single quote', "events { }\npid 'abc;\n",
		fails(qq|$E unexpected end of file, expecting ";" or "}" in %%CONF%%:3|)],
	['char after quote', "events { }\npid \"a\"b;\n",
		fails(qq|$E unexpected "b" in %%CONF%%:2|)],
	['no opening {', "events;\n",
		fails(qq|$E directive "events" has no opening "{" in %%CONF%%:1|)],
	['not terminated by ;', "worker_processes 1 {\n}\nevents { }\n",
		fails(qq|$E directive "worker_processes" is not terminated by ";" in %%CONF%%:1|)],
	['comments', "# a { comment ; }\nevents { } # another\n", passes()],
	['escaped quote', "events { }\nworker_processes \"1\"; # \\\"\n", passes()],
	['include missing', "events { }\ninclude nonexistent.conf;\n",
		fails(qq|$E open() "%%DIR%%/nonexistent.conf" failed (2: No such file or directory) in %%CONF%%:2|)],
	['include no args', "events { }\ninclude;\n",
		fails(qq|$E invalid number of arguments in "include" directive in %%CONF%%:2|)],
	['include empty glob', "events { }\ninclude nomatch*.conf;\n", passes()],
	['include glob error', "events { }\ninclude inc*.conf;\n",
		fails(qq|$E unknown directive "foo" in %%DIR%%/inc1.conf:2|),
		{ files => { 'inc1.conf' => "# included\nfoo;\n" } }],

	# --- main ----------------------------------------------------------
	['worker_processes no args', "worker_processes;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "worker_processes" directive in %%CONF%%:1|)],
	['worker_processes too many', "worker_processes 1 2;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "worker_processes" directive in %%CONF%%:1|)],
	['worker_processes invalid', "worker_processes abc;\nevents { }\n",
		fails(qq|$E "worker_processes" directive invalid value in %%CONF%%:1|)],
	['daemon invalid', "daemon maybe;\nevents { }\n",
		fails(qq|$E invalid value "maybe" in "daemon" directive, $onoff in %%CONF%%:1|)],
	['daemon duplicate', "daemon on;\ndaemon off;\nevents { }\n",
		fails(qq|$E "daemon" directive is duplicate in %%CONF%%:2|)],
	['master_process invalid', "master_process 1;\nevents { }\n",
		fails(qq|$E invalid value "1" in "master_process" directive, $onoff in %%CONF%%:1|)],
	['pid duplicate', "pid a.pid;\npid b.pid;\nevents { }\n",
		fails(qq|$E "pid" directive is duplicate in %%CONF%%:2|)],
	['pid no args', "pid;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "pid" directive in %%CONF%%:1|)],
	['worker_rlimit_nofile invalid', "worker_rlimit_nofile x;\nevents { }\n",
		fails(qq|$E "worker_rlimit_nofile" directive invalid number in %%CONF%%:1|)],
	['worker_rlimit_nofile negative', "worker_rlimit_nofile -1;\nevents { }\n",
		fails(qq|$E "worker_rlimit_nofile" directive invalid number in %%CONF%%:1|)],
	['worker_rlimit_core invalid', "worker_rlimit_core 10q;\nevents { }\n",
		fails(qq|$E "worker_rlimit_core" directive invalid value in %%CONF%%:1|)],
	['worker_shutdown_timeout invalid', "worker_shutdown_timeout 5x;\nevents { }\n",
		fails(qq|$E "worker_shutdown_timeout" directive invalid value in %%CONF%%:1|)],
	['timer_resolution invalid', "timer_resolution abc;\nevents { }\n",
		fails(qq|$E "timer_resolution" directive invalid value in %%CONF%%:1|)],
	['worker_priority invalid', "worker_priority abc;\nevents { }\n",
		fails(qq|$E "worker_priority" directive invalid number in %%CONF%%:1|)],
	['worker_cpu_affinity invalid', "worker_cpu_affinity 0102;\nevents { }\n",
		fails(qq|$E invalid character "2" in "worker_cpu_affinity" in %%CONF%%:1|)],
	['worker_cpu_affinity auto invalid',
		"worker_processes 2;\nworker_cpu_affinity auto 0x;\nevents { }\n",
		fails(qq|$E invalid character "x" in "worker_cpu_affinity" in %%CONF%%:2|)],
	['worker_cpu_affinity count',
		"worker_processes 2;\nworker_cpu_affinity 01 10 11;\nevents { }\n",
		['the configuration file %%CONF%% syntax is ok',
		qq|$W the number of "worker_processes" is not equal to the number of "worker_cpu_affinity" masks, using last mask for remaining worker processes|,
		'configuration file %%CONF%% test is successful']],
	['user no args', "user;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "user" directive in %%CONF%%:1|)],
	['user too many', "user a b c;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "user" directive in %%CONF%%:1|)],
	['user unknown', "user nosuchuser_zz;\nevents { }\n",
		fails(qq|$E getpwnam("nosuchuser_zz") failed in %%CONF%%:1|),
		{ root => 1 }],
	['group unknown', "user root nosuchgroup_zz;\nevents { }\n",
		fails(qq|$E getgrnam("nosuchgroup_zz") failed in %%CONF%%:1|),
		{ root => 1 }],
	['working_directory no args', "working_directory;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "working_directory" directive in %%CONF%%:1|)],
	['env no args', "env;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "env" directive in %%CONF%%:1|)],
	['lock_file too many', "lock_file a b;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "lock_file" directive in %%CONF%%:1|)],
	['server in main', "events { }\nserver { }\n",
		fails(qq|$E "server" directive is not allowed here in %%CONF%%:2|)],

	# --- error_log -----------------------------------------------------
	['error_log no args', "error_log;\nevents { }\n",
		fails(qq|$E invalid number of arguments in "error_log" directive in %%CONF%%:1|)],
	['error_log level', "error_log e.log bogus;\nevents { }\n",
		fails(qq|$E invalid log level "bogus" in %%CONF%%:1|)],
	['error_log levels ok', "error_log e.log debug;\nerror_log e2.log crit;\nevents { }\n", passes()],
	['syslog facility', "error_log syslog:server=127.0.0.1,facility=foo;\nevents { }\n",
		fails(qq|$E unknown syslog facility "foo" in %%CONF%%:1|)],
	['syslog severity', "error_log syslog:server=127.0.0.1,severity=bar;\nevents { }\n",
		fails(qq|$E unknown syslog severity "bar" in %%CONF%%:1|)],
	['syslog parameter', "error_log syslog:server=127.0.0.1,foo=1;\nevents { }\n",
		fails(qq|$E unknown syslog parameter "foo=1" in %%CONF%%:1|)],
	['syslog tag', "error_log syslog:server=127.0.0.1,tag=a-b;\nevents { }\n",
		fails(qq|$E syslog "tag" only allows alphanumeric characters and underscore in %%CONF%%:1|)],
	['syslog no server', "error_log syslog:tag=abc;\nevents { }\n",
		fails(qq|$E no syslog server specified in %%CONF%%:1|)],
	['memory size', "error_log memory:xx;\nevents { }\n",
		fails(qq|$E invalid buffer size "xx" in %%CONF%%:1|)],
	['error_log server level', M('', 'error_log e.log bogus;'),
		fails(qq|$E invalid log level "bogus" in %%CONF%%:8|)],

	# --- events --------------------------------------------------------
	['no events', "worker_processes 1;\n",
		['the configuration file %%CONF%% syntax is ok',
		qq|$E no "events" section in configuration|,
		'configuration file %%CONF%% test failed']],
	['events duplicate', "events { }\nevents { }\n",
		fails(qq|$E "events" directive is duplicate in %%CONF%%:2|)],
	['worker_connections no args', "events {\n    worker_connections;\n}\n",
		fails(qq|$E invalid number of arguments in "worker_connections" directive in %%CONF%%:2|)],
	['worker_connections invalid', "events {\n    worker_connections 0x;\n}\n",
		fails(qq|$E invalid number "0x" in %%CONF%%:2|)],
	['use unknown', "events {\n    use kqueue;\n}\n",
		fails(qq|$E invalid event type "kqueue" in %%CONF%%:2|)],
	['use no args', "events {\n    use;\n}\n",
		fails(qq|$E invalid number of arguments in "use" directive in %%CONF%%:2|)],
	['multi_accept invalid', "events {\n    multi_accept yes;\n}\n",
		fails(qq|$E invalid value "yes" in "multi_accept" directive, $onoff in %%CONF%%:2|)],
	['accept_mutex invalid', "events {\n    accept_mutex 2;\n}\n",
		fails(qq|$E invalid value "2" in "accept_mutex" directive, $onoff in %%CONF%%:2|)],
	['accept_mutex_delay invalid', "events {\n    accept_mutex_delay 5q;\n}\n",
		fails(qq|$E "accept_mutex_delay" directive invalid value in %%CONF%%:2|)],
	['events unknown', "events {\n    foo;\n}\n",
		fails(qq|$E unknown directive "foo" in %%CONF%%:2|)],
	['worker_processes in events', "events {\n    worker_processes 1;\n}\n",
		fails(qq|$E "worker_processes" directive is not allowed here in %%CONF%%:2|)],
	['mail in events', "events {\n    mail { }\n}\n",
		fails(qq|$E "mail" directive is not allowed here in %%CONF%%:2|)],

	# --- mail and server -----------------------------------------------
	['mail duplicate', "events { }\nmail { }\nmail { }\n",
		fails(qq|$E "mail" directive is duplicate in %%CONF%%:3|)],
	['mail empty', "events { }\nmail { }\n", passes()],
	['mail no block', "events { }\nmail;\n",
		fails(qq|$E directive "mail" has no opening "{" in %%CONF%%:2|)],
	['listen in mail', "events { }\nmail {\n    listen 8143;\n}\n",
		fails(qq|$E "listen" directive is not allowed here in %%CONF%%:3|)],
	['worker_processes in mail', "events { }\nmail {\n    worker_processes 1;\n}\n",
		fails(qq|$E "worker_processes" directive is not allowed here in %%CONF%%:3|)],
	['events in mail', "events { }\nmail {\n    events { }\n}\n",
		fails(qq|$E "events" directive is not allowed here in %%CONF%%:3|)],
	['mail unknown', M('foo;'),
		fails(qq|$E unknown directive "foo" in %%CONF%%:4|)],
	['server unknown', M('', 'foo;'),
		fails(qq|$E unknown directive "foo" in %%CONF%%:8|)],
	['no auth_http', "events { }\nmail {\n    server {\n        listen 127.0.0.1:8143;\n        protocol imap;\n    }\n}\n",
		fails(qq|$E no "auth_http" is defined for server in %%CONF%%:3|)],
	['no listen', "events { }\nmail {\n    auth_http 127.0.0.1:8080/auth;\n    server {\n        protocol imap;\n    }\n}\n",
		fails(qq|$E no "listen" is defined for server in %%CONF%%:4|)],
	['no protocol', "events { }\nmail {\n    auth_http 127.0.0.1:8080/auth;\n    server {\n        listen 127.0.0.1:8000;\n    }\n}\n",
		fails(qq|$E unknown mail protocol for server in %%CONF%%:4|)],
	['protocol by port', "events { }\nmail {\n    auth_http 127.0.0.1:8080/auth;\n    server {\n        listen 127.0.0.1:143;\n    }\n    server {\n        listen 127.0.0.1:587;\n    }\n}\n", passes()],
	['unknown protocol', M('', 'protocol foo;'),
		fails(qq|$E unknown protocol "foo" in %%CONF%%:8|)],
	['protocol twice', M('', 'protocol pop3;'), passes()],
	['server_name no args', M('', 'server_name;'),
		fails(qq|$E invalid number of arguments in "server_name" directive in %%CONF%%:8|)],
	['timeout invalid', M('', 'timeout 5q;'),
		fails(qq|$E "timeout" directive invalid value in %%CONF%%:8|)],
	['timeout combined ok', M('', 'timeout "1h 30m";'), passes()],
	['timeout combined invalid', M('', 'timeout "1h 30x";'),
		fails(qq|$E "timeout" directive invalid value in %%CONF%%:8|)],
	['timeout unquoted', M('', 'timeout 1h 30m;'),
		fails(qq|$E invalid number of arguments in "timeout" directive in %%CONF%%:8|)],
	['timeout duplicate', M('timeout 5s;', 'timeout 5s; timeout 6s;'),
		fails(qq|$E "timeout" directive is duplicate in %%CONF%%:8|)],
	['max_errors invalid', M('', 'max_errors x;'),
		fails(qq|$E "max_errors" directive invalid number in %%CONF%%:8|)],
	['resolver no args', M('resolver;'),
		fails(qq|$E invalid number of arguments in "resolver" directive in %%CONF%%:4|)],
	['resolver valid=', M('resolver 127.0.0.1 valid=x;'),
		fails(qq|$E invalid parameter: valid=x in %%CONF%%:4|)],
	['resolver off', M('resolver off;'), passes()],
	['resolver_timeout invalid', M('resolver_timeout x;'),
		fails(qq|$E "resolver_timeout" directive invalid value in %%CONF%%:4|)],

	# --- listen --------------------------------------------------------
	['listen no args', M('', 'listen;'),
		fails(qq|$E invalid number of arguments in "listen" directive in %%CONF%%:8|)],
	['listen duplicate', M('', 'listen 127.0.0.1:8143;'),
		fails(qq|$E duplicate "127.0.0.1:8143" address and port pair in %%CONF%%:8|)],
	['listen duplicate other server',
		M("server {\n        listen 127.0.0.1:8143;\n        protocol pop3;\n    }"),
		fails(qq|$E duplicate "127.0.0.1:8143" address and port pair in %%CONF%%:9|)],
	['listen duplicate wildcard', M('', 'listen *:8145; listen 0.0.0.0:8145;'),
		fails(qq|$E duplicate "0.0.0.0:8145" address and port pair in %%CONF%%:8|)],
	['listen duplicate port only', M('', 'listen 8146; listen *:8146;'),
		fails(qq|$E duplicate "0.0.0.0:8146" address and port pair in %%CONF%%:8|)],
	['listen duplicate unix', M('', 'listen unix:/tmp/x.sock; listen unix:/tmp/x.sock;'),
		fails(qq|$E duplicate "unix:/tmp/x.sock" address and port pair in %%CONF%%:8|)],
	['listen invalid parameter', M('', 'listen 127.0.0.1:8144 foo;'),
		fails(qq|$E the invalid "foo" parameter in %%CONF%%:8|),
		{ postern => fails(qq|$E invalid parameter "foo" in %%CONF%%:8|) }],
	['listen invalid ipv6only', M('', 'listen [::1]:8144 ipv6only=maybe;'),
		fails(qq|$E the invalid "ipv6only=maybe" parameter in %%CONF%%:8|),
		{ postern => fails(qq|$E invalid parameter "ipv6only=maybe" in %%CONF%%:8|) }],
	['listen invalid port', M('', 'listen 127.0.0.1:99999;'),
		fails(qq|$E invalid port in "127.0.0.1:99999" of the "listen" directive in %%CONF%%:8|)],
	['listen port 0', M('', 'listen 127.0.0.1:0;'),
		fails(qq|$E invalid port in "127.0.0.1:0" of the "listen" directive in %%CONF%%:8|)],
	['listen empty port', M('', 'listen 127.0.0.1:;'),
		fails(qq|$E invalid port in "127.0.0.1:" of the "listen" directive in %%CONF%%:8|)],
	['listen invalid host', M('', 'listen 300.0.0.1:8144;'),
		fails(qq|$E host not found in "300.0.0.1:8144" of the "listen" directive in %%CONF%%:8|)],
	['listen backlog', M('', 'listen 127.0.0.1:8144 backlog=x;'),
		fails(qq|$E invalid backlog "backlog=x" in %%CONF%%:8|)],
	['listen rcvbuf', M('', 'listen 127.0.0.1:8144 rcvbuf=x;'),
		fails(qq|$E invalid rcvbuf "rcvbuf=x" in %%CONF%%:8|)],
	['listen sndbuf', M('', 'listen 127.0.0.1:8144 sndbuf=-;'),
		fails(qq|$E invalid sndbuf "sndbuf=-" in %%CONF%%:8|)],
	['listen so_keepalive', M('', 'listen 127.0.0.1:8144 so_keepalive=maybe;'),
		fails(qq|$E invalid so_keepalive value: "maybe" in %%CONF%%:8|)],
	['listen so_keepalive idle', M('', 'listen 127.0.0.1:8144 so_keepalive=x::;'),
		fails(qq|$E invalid so_keepalive value: "x::" in %%CONF%%:8|)],
	['listen all parameters', M('', 'listen 127.0.0.1:8144 bind backlog=10 rcvbuf=8k sndbuf=8k so_keepalive=30m::10;'), passes()],
	['listen ssl without certificate', M('', 'listen 127.0.0.1:8993 ssl;'),
		fails(qq|$E no "ssl_certificate" is defined for the "listen ... ssl" directive in %%CONF%%:8|)],
	['listen ssl without key', M('', 'listen 127.0.0.1:8993 ssl; ssl_certificate cert.pem;'),
		fails(qq|$E no "ssl_certificate_key" is defined for the "listen ... ssl" directive in %%CONF%%:8|)],
	['certificate without its key', M('', 'listen 127.0.0.1:8993 ssl; ssl_certificate a.pem; ssl_certificate b.pem; ssl_certificate_key a.key;'),
		fails(qq|$E no "ssl_certificate_key" is defined for certificate "b.pem" and the "listen ... ssl" directive in %%CONF%%:8|)],

	# --- auth_http -----------------------------------------------------
	['auth_http no args', M('', 'auth_http;'),
		fails(qq|$E invalid number of arguments in "auth_http" directive in %%CONF%%:8|)],
	['auth_http invalid host', M('', 'auth_http http://[::1/auth;'),
		fails(qq|$E invalid host in auth_http "[::1/auth" in %%CONF%%:8|)],
	['auth_http invalid port', M('', 'auth_http 127.0.0.1:0/auth;'),
		fails(qq|$E invalid port in auth_http "127.0.0.1:0/auth" in %%CONF%%:8|)],
	['auth_http empty unix', M('', 'auth_http unix:;'),
		fails(qq|$E no path in the unix domain socket in auth_http "unix:" in %%CONF%%:8|)],
	['auth_http at both levels', M('auth_http 127.0.0.1:8081/;'), passes()],
	['auth_http_timeout invalid', M('auth_http_timeout x;'),
		fails(qq|$E "auth_http_timeout" directive invalid value in %%CONF%%:4|)],
	['auth_http_header args', M('auth_http_header X;'),
		fails(qq|$E invalid number of arguments in "auth_http_header" directive in %%CONF%%:4|)],
	['auth_http_pass_client_cert invalid', M('auth_http_pass_client_cert maybe;'),
		fails(qq|$E invalid value "maybe" in "auth_http_pass_client_cert" directive, $onoff in %%CONF%%:4|)],

	# --- proxy ---------------------------------------------------------
	['proxy_buffer invalid', M('', 'proxy_buffer 1q;'),
		fails(qq|$E "proxy_buffer" directive invalid value in %%CONF%%:8|)],
	['proxy_buffer duplicate', M('', 'proxy_buffer 4k; proxy_buffer 8k;'),
		fails(qq|$E "proxy_buffer" directive is duplicate in %%CONF%%:8|)],
	['sizes ok', M('', 'imap_client_buffer 4k; proxy_buffer 1m;'), passes()],
	['proxy_timeout invalid', M('', 'proxy_timeout x;'),
		fails(qq|$E "proxy_timeout" directive invalid value in %%CONF%%:8|)],
	['proxy_pass_error_message invalid', M('', 'proxy_pass_error_message maybe;'),
		fails(qq|$E invalid value "maybe" in "proxy_pass_error_message" directive, $onoff in %%CONF%%:8|)],
	['xclient invalid', M('', 'xclient maybe;'),
		fails(qq|$E invalid value "maybe" in "xclient" directive, $onoff in %%CONF%%:8|)],
	['proxy_smtp_auth invalid', M('', 'proxy_smtp_auth maybe;'),
		fails(qq|$E invalid value "maybe" in "proxy_smtp_auth" directive, $onoff in %%CONF%%:8|)],
	# mainline made proxy_protocol an enum (off, on, v2)
	['proxy_protocol invalid', M('', 'proxy_protocol maybe;'),
		fails(qq|$E invalid value "maybe" in "proxy_protocol" directive, $onoff in %%CONF%%:8|),
		{ postern => fails(qq|$E invalid value "maybe" in %%CONF%%:8|) }],

	# newer than nginx 1.22: valid in mainline
	['proxy_protocol v2', M('', 'proxy_protocol v2;'),
		fails(qq|$E invalid value "v2" in "proxy_protocol" directive, $onoff in %%CONF%%:8|),
		{ postern => passes() }],
	['listen multipath', M('', 'listen 127.0.0.1:8144 multipath;'),
		fails(qq|$E the invalid "multipath" parameter in %%CONF%%:8|),
		{ postern => passes() }],

	# --- imap, pop3, smtp ----------------------------------------------
	['imap_client_buffer invalid', M('', 'imap_client_buffer 4kb;'),
		fails(qq|$E "imap_client_buffer" directive invalid value in %%CONF%%:8|)],
	['imap_auth invalid', M('', 'imap_auth foo;'),
		fails(qq|$E invalid value "foo" in %%CONF%%:8|)],
	['imap_capabilities no args', M('', 'imap_capabilities;'),
		fails(qq|$E invalid number of arguments in "imap_capabilities" directive in %%CONF%%:8|)],
	['pop3_auth invalid', M('', 'pop3_auth foo;'),
		fails(qq|$E invalid value "foo" in %%CONF%%:8|)],
	['smtp_auth invalid', M('', 'smtp_auth foo;'),
		fails(qq|$E invalid value "foo" in %%CONF%%:8|)],
	['smtp_auth none', M('', 'smtp_auth none plain;'), passes()],
	['smtp_greeting_delay invalid', M('', 'smtp_greeting_delay x;'),
		fails(qq|$E "smtp_greeting_delay" directive invalid value in %%CONF%%:8|)],
	['smtp_client_buffer invalid', M('', 'smtp_client_buffer x;'),
		fails(qq|$E "smtp_client_buffer" directive invalid value in %%CONF%%:8|)],

	# --- ssl -----------------------------------------------------------
	['ssl invalid', M('', 'ssl maybe;'),
		fails(qq|$E invalid value "maybe" in "ssl" directive, $onoff in %%CONF%%:8|)],
	['ssl on without certificate', M('', 'ssl on;'),
		fails(qq|$W the "ssl" directive is deprecated, use the "listen ... ssl" directive instead in %%CONF%%:8|,
		qq|$E no "ssl_certificate" is defined for the "ssl" directive in %%CONF%%:8|)],
	['starttls invalid', M('', 'starttls maybe;'),
		fails(qq|$E invalid value "maybe" in %%CONF%%:8|)],
	['starttls without certificate', M('', 'starttls on;'),
		fails(qq|$E no "ssl_certificate" is defined for the "starttls" directive in %%CONF%%:8|)],
	['starttls only without certificate', M('', 'starttls only;'),
		fails(qq|$E no "ssl_certificate" is defined for the "starttls" directive in %%CONF%%:8|)],
	['ssl_protocols invalid', M('', 'ssl_protocols TLSv9;'),
		fails(qq|$E invalid value "TLSv9" in %%CONF%%:8|)],
	['ssl_protocols no args', M('', 'ssl_protocols;'),
		fails(qq|$E invalid number of arguments in "ssl_protocols" directive in %%CONF%%:8|)],
	['ssl_protocols old names', M('', 'ssl_protocols SSLv3 TLSv1;'), passes()],
	['ssl_session_cache invalid', M('', 'ssl_session_cache foo;'),
		fails(qq|$E invalid session cache "foo" in %%CONF%%:8|)],
	['ssl_session_cache shared without size', M('', 'ssl_session_cache shared:SSL;'),
		fails(qq|$E invalid session cache "shared:SSL" in %%CONF%%:8|)],
	['ssl_session_cache builtin size', M('', 'ssl_session_cache builtin:x;'),
		fails(qq|$E invalid session cache "builtin:x" in %%CONF%%:8|)],
	['ssl_session_timeout invalid', M('', 'ssl_session_timeout x;'),
		fails(qq|$E "ssl_session_timeout" directive invalid value in %%CONF%%:8|)],
	['ssl_verify_client invalid', M('', 'ssl_verify_client maybe;'),
		fails(qq|$E invalid value "maybe" in %%CONF%%:8|)],
	['ssl_verify_depth invalid', M('', 'ssl_verify_depth x;'),
		fails(qq|$E "ssl_verify_depth" directive invalid number in %%CONF%%:8|)],
	['ssl_prefer_server_ciphers invalid', M('', 'ssl_prefer_server_ciphers maybe;'),
		fails(qq|$E invalid value "maybe" in "ssl_prefer_server_ciphers" directive, $onoff in %%CONF%%:8|)],
	['ssl_session_tickets invalid', M('', 'ssl_session_tickets maybe;'),
		fails(qq|$E invalid value "maybe" in "ssl_session_tickets" directive, $onoff in %%CONF%%:8|)],
	['ssl_conf_command args', M('', 'ssl_conf_command Options;'),
		fails(qq|$E invalid number of arguments in "ssl_conf_command" directive in %%CONF%%:8|)],

	# --- realip --------------------------------------------------------
	['set_real_ip_from invalid', M('', 'set_real_ip_from 1.2.3.4/99;'),
		fails(qq|$E host not found in set_real_ip_from "1.2.3.4/99" in %%CONF%%:8|)],
	# nginx's address reader takes an empty octet as 0 (10.0.0.0/8)
	['set_real_ip_from empty octet', M('', 'set_real_ip_from 10..0.0/8;'),
		passes()],

	# --- -g ------------------------------------------------------------
	['-g unknown', "events { }\n",
		fails(qq|$E unknown directive "foo" in command line|),
		{ args => ['-g', 'foo;'] }],
	['-g not terminated', "events { }\n",
		fails(qq|$E unexpected end of parameter, expecting ";" in command line|),
		{ args => ['-g', 'worker_processes 1'] }],
	['-g not allowed', "events { }\n",
		fails(qq|$E "worker_connections" directive is not allowed here in command line|),
		{ args => ['-g', 'worker_connections 1;'] }],
	['-g block', "events { }\n",
		fails(qq|$E block directives are not supported in -g option in command line|),
		{ args => ['-g', 'events { }'] }],
	['-g invalid value', "events { }\n",
		fails(qq|$E "worker_processes" directive invalid value in command line|),
		{ args => ['-g', 'worker_processes x;'] }],
	['-g duplicate', "events { }\n",
		fails(qq|$E "pid" directive is duplicate in command line|),
		{ args => ['-g', 'pid a.pid; pid b.pid;'] }],
	['-g duplicate in file', "daemon on;\nevents { }\n",
		fails(qq|$E "daemon" directive is duplicate in %%CONF%%:1|),
		{ args => ['-g', 'daemon off;'] }],
	['-g unexpected }', "events { }\n",
		fails(qq|$E unexpected "}" in command line|),
		{ args => ['-g', '}'] }],
	['-g ok', "events { }\n", passes(), { args => ['-g', 'daemon off;'] }],
);

my $t = Test::Postern->new();
$t->plan(scalar(@cases) + 4);

my $dir = $t->testdir;
my $conf = "$dir/postern.conf";
my $name = Test::Postern::binary_name();
my $nginx = Test::Postern::is_nginx();

for my $case (@cases) {
	my ($title, $text, $expect, $opts) = @$case;
	$opts //= {};

SKIP: {
	skip 'needs root', 1 if $opts->{root} && $> != 0;

	$expect = $opts->{postern} if !$nginx && $opts->{postern};
	my @args = @{$opts->{args} // []};

	# keep stock nginx's compiled-in /run/nginx.pid out of the way
	push @args, '-g', "pid $dir/logs/test.pid;"
		if $nginx && !@args && $text !~ /^pid\b/m;
	mkdir "$dir/logs";

	$t->write_file($_, $opts->{files}{$_}) for keys %{$opts->{files} // {}};
	$t->write_file_expand('postern.conf', $text);

	my $r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf',
		'-e', 'error.log', '-t', @args);

	my $want = join '', map { "$name: $_\n" } @$expect;
	$want =~ s/%%CONF%%/$conf/g;
	$want =~ s/%%DIR%%/$dir/g;
	my $failed = grep { /test failed/ } @$expect;

	is($r->{stderr} . ($r->{status} >> 8 == ($failed ? 1 : 0) ? ''
		: "(exit status " . ($r->{status} >> 8) . ")\n"), $want, $title);

	unlink glob("$dir/*.conf");
}
}

# Differences from nginx on purpose: http {} and stream {} are rejected,
# the mail module may be loaded (a no-op), other modules are rejected.

SKIP: {
	skip 'postern only', 4 if $nginx;

	for my $block (qw/http stream/) {
		$t->write_file('postern.conf', "events { }\n$block {\n}\n");
		my $r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf',
			'-e', 'error.log', '-t');
		like($r->{stderr},
			qr/^postern: \[emerg\] .*\bmail\b.* in \Q$conf\E:2\n/,
			"$block block rejected");
	}

	$t->write_file('postern.conf', "load_module "
		. "/usr/lib/nginx/modules/ngx_mail_module.so;\nevents { }\n");
	my $r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf',
		'-e', 'error.log', '-t');
	is($r->{stderr}, "postern: the configuration file $conf syntax is ok\n"
		. "postern: configuration file $conf test is successful\n",
		'load_module of the mail module');

	$t->write_file('postern.conf', "load_module modules/other.so;\n"
		. "events { }\n");
	$r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf',
		'-e', 'error.log', '-t');
	like($r->{stderr}, qr/^postern: \[emerg\] .* in \Q$conf\E:1\n/,
		'load_module of another module');
}
