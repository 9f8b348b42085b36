#!/usr/bin/perl

# The command line: -h/-?, -v, -V, -t, -T, -q, -p, -c, -e, -g and invalid
# options, with nginx's exact wording.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Test::Postern;

my $t = Test::Postern->new()->plan(43);

my $name = Test::Postern::binary_name();
my $nginx = Test::Postern::is_nginx();
my $dir = $t->testdir;
my $conf = "$dir/postern.conf";

# --- help and version -----------------------------------------------------

my $usage = join '', map { "$_\n" }
	qr/\Q$name\E version: \Q$name\E\/\d+\.\d+\.\d+/,
	"Usage: $name [-?hvVtTq] [-s signal] [-p prefix]",
	# aligned under "nginx" in nginx; Postern may align under its name
	qr/ {13}(?: {2})?\[-e filename\] \[-c filename\] \[-g directives\]/,
	'',
	'Options:',
	'  -?,-h         : this help',
	'  -v            : show version and exit',
	'  -V            : show version and configure options then exit',
	'  -t            : test configuration and exit',
	'  -T            : test configuration, dump it and exit',
	'  -q            : suppress non-error messages during configuration testing',
	'  -s signal     : send signal to a master process: stop, quit, reopen, reload',
	qr/  -p prefix     : set prefix path \(default: [^\s()]+\)/,
	qr/  -e filename   : set error log file \(default: [^\s()]+\)/,
	qr/  -c filename   : set configuration file \(default: [^\s()]+\)/,
	'  -g directives : set global directives out of configuration file',
	'';
# the lines above are strings or stringified qr// objects: one regex
my $usage_re = '';
for my $line (split /\n/, $usage, -1) {
	$usage_re .= ($line =~ /^\(\?\^/ ? substr($line, 4, -1) : quotemeta($line))
		. '\n';
}
$usage_re =~ s/\\n$//;

for my $opt ('-h', '-?') {
	my $r = $t->run_binary($opt);
	like($r->{stderr}, qr/^$usage_re\z/, "$opt usage");
	is($r->{status}, 0, "$opt exit status");
}

my $r = $t->run_binary('-v');
like($r->{stderr}, qr/^\Q$name\E version: \Q$name\E\/\d+\.\d+\.\d+\n\z/, '-v');
is($r->{status}, 0, '-v exit status');

$r = $t->run_binary('-V');
# "built by <compiler>" is optional (Debian's nginx leaves it out)
my @v = grep { !/^built by / } split /\n/, $r->{stderr};
is(scalar @v, 4, '-V lines');
like($v[0], qr/^\Q$name\E version: \Q$name\E\/\d+\.\d+\.\d+$/, '-V version');
my $openssl = qr/OpenSSL \d+\.\d+\.\d+\S*(?: \d+ \w+ \d+)?/;
like($v[1], qr/^built with $openssl(?: \(running with $openssl\))?$/,
	'-V built with OpenSSL');
is($v[2], 'TLS SNI support enabled', '-V SNI');
like($v[3], qr/^configure arguments: .*--with-mail(=dynamic)?(\s|$)/,
	'-V configure arguments mail');
like($v[3], qr/ --with-mail_ssl_module(\s|$)/, '-V configure arguments mail ssl');

# --- invalid options -------------------------------------------------------

my @invalid = (
	[['-x'], 'invalid option: "x"'],
	[['foo'], 'invalid option: "foo"'],
	[['-p'], 'option "-p" requires directory name'],
	[['-c'], 'option "-c" requires file name'],
	[['-e'], 'option "-e" requires file name'],
	[['-g'], 'option "-g" requires parameter'],
	[['-s'], 'option "-s" requires parameter'],
	[['-s', 'foo'], 'invalid option: "-s foo"'],
);

for my $case (@invalid) {
	my ($args, $msg) = @$case;
	my $r = $t->run_binary(@$args);
	is($r->{stderr} . 'exit ' . ($r->{status} >> 8), "$name: $msg\nexit 1",
		"invalid: @$args");
}

# --- -t, -T, -q ------------------------------------------------------------

$t->write_file_expand('postern.conf', <<'EOF');
pid %%TESTDIR%%/test.pid;
events { }
include inc.conf;
EOF
$t->write_file('inc.conf', "worker_processes 1;\n");

my @base = ('-p', "$dir/", '-c', 'postern.conf', '-e', 'error.log');
my $ok = "$name: the configuration file $conf syntax is ok\n"
	. "$name: configuration file $conf test is successful\n";

$r = $t->run_binary(@base, '-t');
is($r->{stderr}, $ok, '-t');
is($r->{stdout} . $r->{status}, '0', '-t stdout and exit status');

SKIP: {
	skip 'nginx leaves an empty pid file after -t', 1 if $nginx;
	ok(!-e "$dir/test.pid", '-t writes no pid file');
}

$r = $t->run_binary(@base, '-T');
is($r->{stderr}, $ok, '-T stderr');
is($r->{stdout},
	"# configuration file $conf:\n" . $t->read_file('postern.conf') . "\n"
	. "# configuration file $dir/inc.conf:\n" . $t->read_file('inc.conf')
	. "\n", '-T dump');
is($r->{status}, 0, '-T exit status');

$r = $t->run_binary(@base, '-t', '-q');
is($r->{stderr} . $r->{stdout} . $r->{status}, '0', '-t -q is silent');

$r = $t->run_binary(@base, '-T', '-q');
is($r->{stderr}, '', '-T -q stderr');
like($r->{stdout}, qr/^# configuration file \Q$conf\E:\n/, '-T -q dump');

$r = $t->run_binary(@base, '-tq', '-g', 'worker_processes 2;');
is($r->{stderr}, "$name: [emerg] \"worker_processes\" directive is duplicate"
	. " in $dir/inc.conf:1\n$name: configuration file $conf test failed\n",
	'-q does not hide errors; -g applies before the file');
is($r->{status} >> 8, 1, '-t failure exit status');

# --- -p and -c: relative paths --------------------------------------------

mkdir "$dir/conf";
$t->main_conf('conf/main.conf');
$t->write_file_expand('conf/main.conf', <<'EOF');
pid test.pid;
events { }
include inc2.conf;
EOF
$t->main_conf('postern.conf');

$r = $t->run_binary('-p', $dir, '-c', 'conf/main.conf', '-e', 'error.log', '-t');
is($r->{stderr}, "$name: [emerg] open() \"$dir/conf/inc2.conf\" failed"
	. " (2: No such file or directory) in $dir/conf/main.conf:3\n"
	. "$name: configuration file $dir/conf/main.conf test failed\n",
	'-p without slash, -c relative to prefix, include relative to conf dir');

$t->write_file('conf/inc2.conf', "worker_processes 1;\n");
$r = $t->run_binary('-p', "$dir/", '-c', "$dir/conf/main.conf", '-e',
	'error.log', '-t');
is($r->{stderr}, "$name: the configuration file $dir/conf/main.conf syntax is"
	. " ok\n$name: configuration file $dir/conf/main.conf test is successful\n",
	'-c absolute');

# --- -e --------------------------------------------------------------------

my $ts = qr/\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d/;

$r = $t->run_binary('-p', "$dir/", '-c', 'missing.conf', '-e', 'e1.log', '-t');
is($r->{stderr}, "$name: [emerg] open() \"$dir/missing.conf\" failed"
	. " (2: No such file or directory)\n"
	. "$name: configuration file $dir/missing.conf test failed\n",
	'missing config');
is($r->{status} >> 8, 1, 'missing config exit status');
like($t->read_file('e1.log'), qr/^$ts \[emerg\] \d+#\d+: open\(\) "\Q$dir\E\/missing\.conf" failed \(2: No such file or directory\)\n\z/,
	'-e file gets the error');

$r = $t->run_binary('-p', "$dir/", '-c', 'missing.conf', '-e', 'stderr', '-t');
like($r->{stderr}, qr/^$ts \[emerg\] \d+#\d+: open\(\) "\Q$dir\E\/missing\.conf" failed \(2: No such file or directory\)\n\Q$name\E: configuration file \Q$dir\E\/missing.conf test failed\n\z/,
	'-e stderr');

# -e with a directory that does not exist: the error log cannot be opened
$r = $t->run_binary('-p', "$dir/", '-c', 'postern.conf', '-e',
	"$dir/nonexistent/e.log", '-t');
like($r->{stderr}, qr/^\Q$name\E: \[alert\] could not open error log file: open\(\) "\Q$dir\E\/nonexistent\/e.log" failed \(2: No such file or directory\)\n/,
	'-e unwritable');

# --- -g --------------------------------------------------------------------

$r = $t->run_binary(@base, '-T', '-g', 'daemon off;');
is($r->{stderr}, $ok, '-g with -T');
unlike($r->{stdout}, qr/daemon off/, '-g is not part of the dump');

$r = $t->run_binary(@base, '-t', '-g', 'worker_rlimit_nofile 1024; daemon on;');
is($r->{stderr}, $ok, '-g several directives');

# --- -s without a running master ------------------------------------------

unlink "$dir/test.pid";
$r = $t->run_binary(@base, '-s', 'reload');
like($r->{stderr}, qr/^\Q$name\E: \[error\] open\(\) "\Q$dir\E\/test.pid" failed \(2: No such file or directory\)\n\z/,
	'-s without pid file');
is($r->{status} >> 8, 1, '-s without pid file exit status');
