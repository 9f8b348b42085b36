#!/bin/sh
# The Postern quickstart (`make run`): Dovecot as the IMAP/POP3 backend on
# loopback, the reference auth_http service, and Postern in front of them
# in the foreground. Ctrl-C stops all three.
#
# Usage: run.sh <postern binary> <work dir>

set -eu

bin=$1
dir=$2
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$dir/conf" "$dir/logs" "$dir/dovecot/run" "$dir/dovecot/state" "$dir/mail"

# As root, Dovecot's processes and the demo mailbox use the unprivileged
# users the Debian package made; otherwise everything runs as us.
if [ "$(id -u)" = 0 ]; then
    login_user=dovenull
    internal_user=dovecot internal_group=dovecot
    mail_user=nobody mail_group=nogroup
else
    login_user=$(id -un)
    internal_user=$login_user internal_group=$(id -gn)
    mail_user=$login_user mail_group=$internal_group
fi

sed -e "s|@DIR@|$dir|g" -e "s|@LOGIN_USER@|$login_user|g" \
    -e "s|@INTERNAL_USER@|$internal_user|g" -e "s|@INTERNAL_GROUP@|$internal_group|g" \
    -e "s|@MAIL_USER@|$mail_user|g" -e "s|@MAIL_GROUP@|$mail_group|g" \
    "$here/dovecot.conf.in" > "$dir/dovecot/dovecot.conf"
echo 'demo:{PLAIN}demo' > "$dir/dovecot/users"

# One message in the demo mailbox, so that there is something to fetch.
box="$dir/mail/demo/Maildir"
if [ ! -d "$box" ]; then
    mkdir -p "$box/new" "$box/cur" "$box/tmp"
    printf 'From: postern@localhost\r\nTo: demo@localhost\r\nSubject: Welcome to Postern\r\n\r\nThis message was read through Postern.\r\n' \
        > "$box/new/1.quickstart"
    chown -R "$mail_user:$mail_group" "$dir/mail"
fi
cp "$here/postern.conf" "$dir/conf/postern.conf"
if [ ! -f "$dir/conf/quickstart.key" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
        -keyout "$dir/conf/quickstart.key" -out "$dir/conf/quickstart.crt" 2>/dev/null
fi

pids=""
cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "quickstart stopped"
}
trap cleanup INT TERM EXIT

/usr/sbin/dovecot -F -c "$dir/dovecot/dovecot.conf" &
pids="$pids $!"
perl "$here/auth_http.pl" 9180 "$dir/dovecot/users" 2>>"$dir/logs/auth_http.log" &
pids="$pids $!"

cat <<TXT
Postern quickstart (prefix $dir)
  IMAP  127.0.0.1:8143 (STARTTLS), 127.0.0.1:8993 (TLS)
  POP3  127.0.0.1:8110 (STLS)      user "demo", password "demo"
  backends: Dovecot on 127.0.0.1:10143 / 10110; auth_http on 127.0.0.1:9180
  logs: $dir/logs/ (error.log, dovecot.log, auth_http.log)

Try it:
  curl -v --user demo:demo imap://127.0.0.1:8143/INBOX
  curl -v --user demo:demo pop3://127.0.0.1:8110/
  curl -v --insecure --user demo:demo imaps://127.0.0.1:8993/INBOX
  curl -v --insecure --ssl-reqd --user demo:demo pop3://127.0.0.1:8110/1
  openssl s_client -connect 127.0.0.1:8143 -starttls imap   # then: a LOGIN demo demo
Ctrl-C stops everything.
TXT

"$bin" -p "$dir" -c conf/postern.conf &
pids="$pids $!"
wait
