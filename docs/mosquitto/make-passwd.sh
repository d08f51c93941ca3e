#!/bin/sh
# Create or extend a Mosquitto password file for Hearth with a random password per user.
#
#   docs/mosquitto/make-passwd.sh /etc/mosquitto/hearth/passwd hearth-bridge homeassistant kitchen bedroom
#
# Prints "user password" for each user once (put them in the bridge, Home Assistant and
# satellite settings); they are not stored anywhere else. Existing users get a new password.
# Run it on the broker host as root: mosquitto_passwd -b briefly shows the password in `ps`.
# Afterwards: chown mosquitto <file> (mosquitto must read it), then reload mosquitto.
set -eu
if [ "$#" -lt 2 ]; then
    echo "usage: $0 PASSWORD_FILE USER..." >&2
    exit 2
fi
file=$1
shift
umask 077
[ -e "$file" ] || : > "$file"
chmod 600 "$file"
for user in "$@"; do
    case $user in
        *[!A-Za-z0-9_-]* | "") echo "bad user name: $user (use [A-Za-z0-9_-])" >&2; exit 2 ;;
    esac
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-24)
    mosquitto_passwd -b "$file" "$user" "$password"
    echo "$user $password"
done
