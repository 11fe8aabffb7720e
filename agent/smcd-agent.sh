#!/bin/sh
# smcd-agent.sh: the migration-source agent of smcd, in POSIX sh.
#
# Imports the machine it runs on into an smcd server with an activation code, then keeps the
# source Available with heartbeats signed by the source key the import returned. It does what
# `smcd agent import` does without Node.js: it needs /bin/sh (dash, bash or BusyBox ash), curl
# or wget, openssl, and the POSIX tools BusyBox also provides. `smcd-agent.sh help` for usage.
#
# Secrets (the activation code, the source key secret) never reach the argv of a child
# process, any output or log line: HMACs (RFC 2104) are computed with `openssl dgst` reading
# the key, padded and XORed by the shell's builtin printf, from stdin; the code is taken from
# the environment or stdin and removed from the environment before any child runs.

agent_version='sh-0.1.0'
# The server replaces the placeholder with its public URL when it serves this file
# (GET /agent/smcd-agent.sh); a copy read from disk keeps it, which means "not set".
served_endpoint='__SMCD_PUBLIC_URL__'

LC_ALL=C
export LC_ALL
umask 077

prog=smcd-agent
api_version=2019-06-01
import_timeout=30
heartbeat_timeout=10
default_rate=30
unit_name=smcd-agent-heartbeat
installed_path=/usr/local/sbin/smcd-agent
install_root=${SMCD_INSTALL_ROOT:-}
probe_root=${SMCD_PROBE_ROOT:-}
tmp_dir=

# --- output and exits --------------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$prog" "$*" >&2; }
cleanup() {
	if [ -n "$tmp_dir" ]; then
		rm -rf "$tmp_dir"
		tmp_dir=
	fi
}
fail() {
	warn "$*"
	cleanup
	exit 1
}
usage_fail() {
	warn "$*"
	warn "run \"sh smcd-agent.sh help\" for usage"
	cleanup
	exit 2
}
trap cleanup EXIT
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# A private scratch directory: mkdir fails if the name exists, so nobody can plant it.
make_tmp() {
	[ -n "$tmp_dir" ] && return 0
	_base=${TMPDIR:-/tmp}
	_t="$_base/smcd-agent.$$.$(openssl rand -hex 6 2>/dev/null)"
	mkdir "$_t" 2>/dev/null || fail "cannot create a private temporary directory under $_base"
	tmp_dir=$_t
}

# Server text shown to the operator: control characters (terminal escapes) become spaces.
printable() { printf '%s' "$1" | tr '\000-\037\177' ' '; }

# --- hex, percent-encoding and the V1 signature -------------------------------------------------

# Parameters are appended raw, NUL-terminated (no shell string holds a NUL), by the builtin
# printf: no process per parameter. flush_params turns them into "<hex name> <hex value>" lines
# of $params_file with one od, so any UTF-8 (newlines included) survives, and sorting the lines
# sorts the raw names in byte order.
add_param() { printf '%s\000%s\000' "$1" "$2" >>"$params_raw"; }

flush_params() {
	[ -s "$params_raw" ] || return 0
	od -An -v -tx1 "$params_raw" | awk '
		{ for (i = 1; i <= NF; i++) if ($i != "00") cur = cur $i; else { if (isval) { print name " " cur; isval = 0 } else { name = cur; isval = 1 } cur = "" } }' >>"$params_file"
	: >"$params_raw"
}

# Sets octal_fmt to a printf format that writes the bytes of a hex string.
hex_to_fmt() {
	_h=$1
	octal_fmt=
	case $_h in *[!0-9a-fA-F]*) fail "not hex: $_h" ;; esac
	while [ ${#_h} -ge 2 ]; do
		_p=${_h%"${_h#??}"}
		_h=${_h#??}
		_x=$((0x$_p))
		octal_fmt="$octal_fmt\\$((_x >> 6))$(((_x >> 3) & 7))$((_x & 7))"
	done
}

# Sets hex_value to the bytes of a hex string (trailing newlines kept).
from_hex() {
	hex_to_fmt "$1"
	hex_value=$(printf "$octal_fmt.")
	hex_value=${hex_value%.}
}

# RFC 3986 percent-encoding of each name and value (A-Z a-z 0-9 - _ . ~ stay, every other byte
# is %XX upper-case), pairs sorted by raw name, joined with "&": the canonical query of Alibaba
# Cloud's RPC signature V1, and the form body sent.
canonical_query() {
	flush_params
	sort "$params_file" | awk '
		BEGIN {
			keep = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
			for (b = 45; b < 127; b++) { c = sprintf("%c", b); if (index(keep, c)) plain[sprintf("%02x", b)] = c }
		}
		function enc(h,   i, p, out) {
			out = ""
			for (i = 1; i < length(h); i += 2) { p = substr(h, i, 2); out = out ((p in plain) ? plain[p] : "%" toupper(p)) }
			return out
		}
		{ all = all (NR > 1 ? "&" : "") enc($1) "=" enc($2) }
		END { printf "%s", all }'
}

# HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || m)). The key is padded and XORed into printf
# octal escapes by shell arithmetic and written by the builtin printf into openssl's stdin.
# $1 = sha1 | sha256, $2 = key, $3 = file with the message; the raw digest on stdout.
hmac() {
	_alg=$1
	_bytes=$(printf '%s' "$2" | od -An -v -tu1)
	_n=0
	for _b in $_bytes; do _n=$((_n + 1)); done
	# Keys longer than the 64-byte block are hashed first.
	if [ "$_n" -gt 64 ]; then _bytes=$(printf '%s' "$2" | openssl dgst "-$_alg" -binary | od -An -v -tu1); fi
	_ipad=
	_opad=
	_n=0
	for _b in $_bytes; do
		_x=$((_b ^ 54))
		_ipad="$_ipad\\$((_x >> 6))$(((_x >> 3) & 7))$((_x & 7))"
		_x=$((_b ^ 92))
		_opad="$_opad\\$((_x >> 6))$(((_x >> 3) & 7))$((_x & 7))"
		_n=$((_n + 1))
	done
	while [ "$_n" -lt 64 ]; do
		_ipad="$_ipad\\066"
		_opad="$_opad\\134"
		_n=$((_n + 1))
	done
	{
		printf "$_opad"
		{
			printf "$_ipad"
			cat "$3"
		} | openssl dgst "-$_alg" -binary
	} | openssl dgst "-$_alg" -binary
	_bytes=
	_ipad=
	_opad=
	_x=
	_b=
}

# The V1 signature of the parameters in $params_file for a POST, with secret $1:
# Base64(HMAC-SHA1(secret + "&", "POST&%2F&" + percentEncode(canonical query))).
v1_signature() {
	canonical_query >"$tmp_dir/canonical"
	{
		printf 'POST&%%2F&'
		awk '{ gsub(/%/, "%25"); gsub(/=/, "%3D"); gsub(/&/, "%26"); printf "%s", $0 }' "$tmp_dir/canonical"
	} >"$tmp_dir/string-to-sign"
	hmac sha1 "$1&" "$tmp_dir/string-to-sign" | openssl base64 -A
}

# API.md 5.2: lowercase hex HMAC-SHA256(source key secret, MachineId + "\n" + SignatureNonce).
source_proof() {
	printf '%s\n%s' "$2" "$3" >"$tmp_dir/proof-message"
	hmac sha256 "$1" "$tmp_dir/proof-message" | od -An -v -tx1 | tr -d ' \n'
}

# --- JSON answers, without jq -------------------------------------------------------------------

# Prints "key=value" for each string, number or literal member of the top-level object.
# Escapes are decoded (\uXXXX to UTF-8); control characters in values become spaces.
json_fields() {
	awk '
		function hexval(h,   i, v) { v = 0; h = tolower(h); for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
		function utf8(cp) {
			if (cp < 32 || cp == 127) return " "
			if (cp < 128) return sprintf("%c", cp)
			if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
			if (cp >= 55296 && cp < 57344) return "?"
			return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
		}
		{ text = text $0 "\n" }
		END {
			n = length(text); i = 1; depth = 0; state = ""
			while (i <= n) {
				c = substr(text, i, 1)
				if (c == "\"") {
					s = ""; i++
					while (i <= n) {
						c = substr(text, i, 1)
						if (c == "\\") {
							e = substr(text, i + 1, 1); i += 2
							if (e == "u") { s = s utf8(hexval(substr(text, i, 4))); i += 4 }
							else if (e == "n" || e == "r" || e == "t" || e == "b" || e == "f") s = s " "
							else s = s e
							continue
						}
						if (c == "\"") { i++; break }
						if (c < " ") c = " "
						s = s c; i++
					}
					if (depth == 1 && state == "key") key = s
					else if (depth == 1 && state == "value") { print key "=" s; state = "" }
					continue
				}
				if (c == "{" || c == "[") { if (depth == 0 && c == "{") state = "key"; depth++; i++; continue }
				if (c == "}" || c == "]") { depth--; i++; continue }
				if (c == ",") { if (depth == 1) state = "key"; i++; continue }
				if (c == ":") { if (depth == 1) state = "value"; i++; continue }
				if (c == " " || c == "\n" || c == "\t" || c == "\r") { i++; continue }
				t = ""
				while (i <= n && index(",}]: \n\t\r", substr(text, i, 1)) == 0) { t = t substr(text, i, 1); i++ }
				if (depth == 1 && state == "value") { print key "=" t; state = "" }
			}
		}'
}

# The value of KEY in a file of key=value lines (the first one); status 1 when absent.
kv_get() {
	while IFS= read -r _l; do
		case $_l in "$1="*)
			printf '%s' "${_l#*=}"
			return 0
			;;
		esac
	done <"$2"
	return 1
}

# --- shapes of values ---------------------------------------------------------------------------

is_uint() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ ${#1} -le 9 ]
}
is_word() { # $1 value, $2 max length: letters, digits, "-" only
	case $1 in '' | *[!A-Za-z0-9-]*) return 1 ;; esac
	[ ${#1} -le "$2" ]
}
is_alnum() {
	case $1 in '' | *[!A-Za-z0-9]*) return 1 ;; esac
	[ ${#1} -le "$2" ]
}
is_machine_id() {
	case $1 in '' | *[!A-Za-z0-9._:-]*) return 1 ;; esac
	[ ${#1} -le 128 ]
}
is_rate() { is_uint "$1" && [ "$1" -ge 1 ] && [ "$1" -le 86400 ]; }

# An http(s) URL without characters that would need quoting anywhere it is written.
is_endpoint() {
	case $1 in http://?* | https://?*) ;; *) return 1 ;; esac
	case $1 in *[[:space:][:cntrl:]]* | *[\"\'\\\`\<\>\|\{\}\^]*) return 1 ;; esac
	return 0
}

strip_slashes() {
	_e=$1
	while :; do
		case $_e in */) _e=${_e%/} ;; *) break ;; esac
	done
	printf '%s' "$_e"
}

# --- HTTP ---------------------------------------------------------------------------------------

# curl when installed (or SMCD_HTTP_CLIENT=curl|wget). BusyBox wget cannot be relied on to
# verify a server certificate, so it is used for http:// only.
pick_transport() {
	case ${SMCD_HTTP_CLIENT:-} in
	curl)
		command -v curl >/dev/null 2>&1 || fail "SMCD_HTTP_CLIENT=curl, but curl is not installed"
		transport=curl
		;;
	wget)
		command -v wget >/dev/null 2>&1 || fail "SMCD_HTTP_CLIENT=wget, but wget is not installed"
		transport=wget
		;;
	'')
		if command -v curl >/dev/null 2>&1; then
			transport=curl
		elif command -v wget >/dev/null 2>&1; then
			transport=wget
		else
			fail "neither curl nor wget is installed: install curl (apt-get install curl, yum install curl, apk add curl, zypper install curl)"
		fi
		;;
	*) usage_fail "SMCD_HTTP_CLIENT must be curl or wget" ;;
	esac
	wget_kind=
	wget_timeout=
	if [ "$transport" = wget ]; then
		if wget --version 2>/dev/null | grep -q 'GNU Wget'; then
			wget_kind=gnu
		else
			wget_kind=busybox
			case $1 in https:*)
				fail "$1 is https, and this machine has only BusyBox wget, which cannot be relied on to verify the server's certificate: install curl (apk add curl, or your distribution's curl package) and run this again"
				;;
			esac
			if wget --help 2>&1 | grep -q -- '-T SEC'; then
				wget_timeout=option
			elif timeout 5 true >/dev/null 2>&1; then
				wget_timeout=timeout
			fi
		fi
	fi
	if [ -n "${SMCD_CA_FILE:-}" ] && [ ! -r "$SMCD_CA_FILE" ]; then
		fail "SMCD_CA_FILE=$SMCD_CA_FILE is not a readable file"
	fi
}

# POST the form in file $2 to URL $1, answer into file $3, giving up after $4 seconds.
# Returns 0 with http_status set when the server answered, 1 with transport_error set when not.
http_post() {
	http_status=
	transport_error=
	rm -f "$3" "$tmp_dir/http.err"
	case $transport in
	curl)
		http_status=$(curl -sS --proto =http,https --connect-timeout 10 --max-time "$4" \
			${SMCD_CA_FILE:+--cacert} ${SMCD_CA_FILE:+"$SMCD_CA_FILE"} \
			-H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$2" \
			-o "$3" -w '%{http_code}' "$1" 2>"$tmp_dir/http.err")
		_rc=$?
		if [ "$_rc" -ne 0 ]; then
			transport_error=$(head -n 1 "$tmp_dir/http.err")
			case $_rc in 35 | 51 | 58 | 60 | 77 | 83 | 90 | 91)
				transport_error="$transport_error (the server's certificate could not be verified: if a private CA signed it, set SMCD_CA_FILE to that CA's certificate file)"
				;;
			esac
			transport_error=$(printable "${transport_error:-curl failed with exit code $_rc}")
			http_status=
			return 1
		fi
		;;
	wget)
		if [ "$wget_kind" = gnu ]; then
			wget -nv -S -O "$3" --tries=1 --timeout="$4" --max-redirect=0 --content-on-error \
				${SMCD_CA_FILE:+"--ca-certificate=$SMCD_CA_FILE"} \
				--header='Content-Type: application/x-www-form-urlencoded' --post-file="$2" "$1" 2>"$tmp_dir/http.err"
		elif [ "$wget_timeout" = option ]; then
			wget -q -S -T "$4" -O "$3" --header 'Content-Type: application/x-www-form-urlencoded' --post-file "$2" "$1" 2>"$tmp_dir/http.err"
		elif [ "$wget_timeout" = timeout ]; then
			timeout "$4" wget -q -S -O "$3" --header 'Content-Type: application/x-www-form-urlencoded' --post-file "$2" "$1" 2>"$tmp_dir/http.err"
		else
			wget -q -S -O "$3" --header 'Content-Type: application/x-www-form-urlencoded' --post-file "$2" "$1" 2>"$tmp_dir/http.err"
		fi
		_rc=$?
		http_status=$(awk '/^ *HTTP\/[0-9.]+ [0-9][0-9][0-9]/ { sub(/^ *HTTP\/[0-9.]+ /, ""); s = substr($0, 1, 3) } END { print s }' "$tmp_dir/http.err")
		if [ -z "$http_status" ]; then
			transport_error=$(grep -v '^ ' "$tmp_dir/http.err" | head -n 1)
			[ "$_rc" -eq 5 ] && transport_error="$transport_error (the server's certificate could not be verified: if a private CA signed it, set SMCD_CA_FILE to that CA's certificate file)"
			transport_error=$(printable "${transport_error:-wget failed with exit code $_rc}")
			return 1
		fi
		;;
	esac
	[ -f "$3" ] || : >"$3"
	return 0
}

# GET URL $1 into file $2 (the agent itself, for `install` when it was piped into sh).
http_get() {
	rm -f "$2"
	case $transport in
	curl) curl -fsS --proto =http,https --connect-timeout 10 --max-time 60 ${SMCD_CA_FILE:+--cacert} ${SMCD_CA_FILE:+"$SMCD_CA_FILE"} -o "$2" "$1" ;;
	wget)
		if [ "$wget_kind" = gnu ]; then
			wget -q -O "$2" --tries=1 --timeout=60 ${SMCD_CA_FILE:+"--ca-certificate=$SMCD_CA_FILE"} "$1"
		else
			wget -q -O "$2" "$1"
		fi
		;;
	esac
}

# --- signed calls -------------------------------------------------------------------------------

# Starts a request: an empty parameter list and a fresh nonce (also used by the ownership proof).
new_request() {
	make_tmp
	params_file=$tmp_dir/params
	params_raw=$tmp_dir/params.raw
	: >"$params_file"
	: >"$params_raw"
	nonce=$(openssl rand -hex 16)
	[ ${#nonce} -eq 32 ] || fail "openssl rand did not produce a nonce: is openssl installed?"
}

# Signs the parameters in $params_file plus the common ones and POSTs them.
# $1 action, $2 key id, $3 secret, $4 timeout. Returns 0 on success (answer in $answer_file),
# 1 when the API refused (api_code, api_message, api_request_id, http_status), 2 unreachable.
call_api() {
	add_param Action "$1"
	add_param Version "$api_version"
	add_param Format JSON
	add_param AccessKeyId "$2"
	add_param SignatureMethod HMAC-SHA1
	add_param SignatureVersion 1.0
	add_param SignatureNonce "$nonce"
	add_param Timestamp "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	_sig=$(v1_signature "$3")
	[ -n "$_sig" ] || fail "could not sign the request: is openssl installed?"
	_sig=$(printf '%s' "$_sig" | sed -e 's/+/%2B/g' -e 's|/|%2F|g' -e 's/=/%3D/g')
	{
		cat "$tmp_dir/canonical"
		printf '&Signature=%s' "$_sig"
	} >"$tmp_dir/body"
	answer_file=$tmp_dir/answer
	api_code=
	api_message=
	api_request_id=
	http_post "$endpoint/" "$tmp_dir/body" "$tmp_dir/answer.json" "$4" || return 2
	json_fields <"$tmp_dir/answer.json" >"$answer_file"
	api_code=$(kv_get Code "$answer_file")
	api_message=$(kv_get Message "$answer_file")
	api_request_id=$(kv_get RequestId "$answer_file")
	case $http_status in 2??) [ -z "$api_code" ] && return 0 ;; esac
	[ -n "$api_code" ] || api_code="HTTP$http_status"
	return 1
}

# --- state --------------------------------------------------------------------------------------

init_state_path() {
	if [ -n "${SMCD_STATE_FILE:-}" ]; then
		state_file=$SMCD_STATE_FILE
	elif [ "$(id -u)" = 0 ]; then
		state_file=/var/lib/smcd-agent/state
	else
		[ -n "${HOME:-}" ] || usage_fail "HOME is not set: set SMCD_STATE_FILE to where the source key should be kept"
		state_file=$HOME/.smcd-agent/state
	fi
	case $state_file in
	*/*) state_dir=${state_file%/*} ;;
	*) state_dir=. ;;
	esac
	[ -n "$state_dir" ] || state_dir=/
}

prepare_state_dir() {
	[ -d "$state_dir" ] && return 0
	mkdir -p "$state_dir" 2>/dev/null || fail "cannot create the state directory $state_dir"
	chmod 700 "$state_dir"
}

# Reads the state file without running it: each line is matched by name and its value checked
# for the shape it must have. Sets st_* (empty when absent or malformed). Returns 1 if no file.
load_state() {
	st_endpoint=
	st_source_id=
	st_key_id=
	st_secret=
	st_rate=
	st_machine_id=
	[ -f "$state_file" ] || return 1
	[ -r "$state_file" ] || fail "cannot read $state_file"
	while IFS= read -r _l; do
		_v=${_l#*=}
		case $_l in
		endpoint=*) is_endpoint "$_v" && st_endpoint=$_v ;;
		source_id=*) is_word "$_v" 64 && st_source_id=$_v ;;
		source_key_id=*) is_word "$_v" 64 && st_key_id=$_v ;;
		source_key_secret=*) is_alnum "$_v" 128 && st_secret=$_v ;;
		heartbeat_rate=*) is_rate "$_v" && st_rate=$_v ;;
		machine_id=*) is_machine_id "$_v" && st_machine_id=$_v ;;
		esac
	done <"$state_file"
	_v=
	_l=
	[ -n "$st_rate" ] || st_rate=$default_rate
	return 0
}

# Written whole to a temporary file (0600 from creation: umask 077), then renamed over the old
# one, so a crash leaves the old key or the new one, never half of either.
save_state() {
	_tmp=$state_file.$$.tmp
	rm -f "$_tmp"
	if ! {
		printf 'endpoint=%s\n' "$st_endpoint"
		printf 'source_id=%s\n' "$st_source_id"
		printf 'source_key_id=%s\n' "$st_key_id"
		printf 'source_key_secret=%s\n' "$st_secret"
		printf 'heartbeat_rate=%s\n' "$st_rate"
		printf 'machine_id=%s\n' "$st_machine_id"
	} >"$_tmp" 2>/dev/null; then
		rm -f "$_tmp"
		fail "cannot write the source key to $state_file"
	fi
	chmod 600 "$_tmp"
	mv -f "$_tmp" "$state_file" || {
		rm -f "$_tmp"
		fail "cannot write the source key to $state_file"
	}
	save_node_state
}

# The Node agent (`smcd agent import`) keeps its key in source.json in the same directory
# (~/.smcd-agent). When it is there, it gets the new key too: an import issues a new secret
# and the old one stops working, and the Node agent re-reads this file when its key is refused.
node_state_file() { printf '%s/source.json' "$state_dir"; }
save_node_state() {
	_node=$(node_state_file)
	[ -f "$_node" ] || return 0
	_tmp=$_node.$$.tmp
	rm -f "$_tmp"
	{
		printf '{\n'
		printf '  "endpoint": "%s",\n' "$st_endpoint"
		printf '  "sourceId": "%s",\n' "$st_source_id"
		printf '  "sourceKeyId": "%s",\n' "$st_key_id"
		printf '  "sourceKeySecret": "%s",\n' "$st_secret"
		printf '  "heartbeatRate": %s\n' "$st_rate"
		printf '}\n'
	} >"$_tmp" 2>/dev/null && mv -f "$_tmp" "$_node" || {
		rm -f "$_tmp"
		warn "warning: could not update $_node (the Node agent's copy of the key)"
	}
}

# The Node agent's saved key, when our own state has none. Sets nd_* or returns 1.
load_node_state() {
	nd_source_id=
	nd_key_id=
	nd_secret=
	_node=$(node_state_file)
	[ -f "$_node" ] && [ -r "$_node" ] || return 1
	make_tmp
	json_fields <"$_node" >"$tmp_dir/node-state"
	_v=$(kv_get sourceId "$tmp_dir/node-state") && is_word "$_v" 64 && nd_source_id=$_v
	_v=$(kv_get sourceKeyId "$tmp_dir/node-state") && is_word "$_v" 64 && nd_key_id=$_v
	_v=$(kv_get sourceKeySecret "$tmp_dir/node-state") && is_alnum "$_v" 128 && nd_secret=$_v
	_v=
	rm -f "$tmp_dir/node-state"
	[ -n "$nd_source_id" ] && [ -n "$nd_key_id" ] && [ -n "$nd_secret" ]
}

# --- the machine --------------------------------------------------------------------------------

# First line of a file, surrounding blanks trimmed; status 1 if unreadable.
read_first() {
	[ -r "$1" ] || return 1
	_f=
	read -r _f <"$1" || [ -n "$_f" ]
	printf '%s' "$_f"
}

# machine-id(5): lower-case hex; "uninitialized" or an empty file (first boot) is not an id.
read_id_file() {
	_i=$(read_first "$1") || return 1
	case $_i in '' | *[!0-9A-Fa-f]*) return 1 ;; esac
	[ ${#_i} -le 128 ] || return 1
	printf '%s' "$_i"
}

# The systemd id, else the D-Bus one, else one of our own kept in <state dir>/machine-id (the
# same file the Node agent uses, so both report the same id). SMCD_MACHINE_ID overrides (clones).
find_machine_id() {
	_m=${SMCD_MACHINE_ID:-${SMCD_AGENT_MACHINE_ID:-}}
	if [ -n "$_m" ]; then
		is_machine_id "$_m" || usage_fail "SMCD_MACHINE_ID must be 1-128 of letters, digits, \".\", \":\", \"_\" and \"-\""
		machine_id=$_m
		return 0
	fi
	machine_id=$(read_id_file "$probe_root/etc/machine-id") && return 0
	machine_id=$(read_id_file "$probe_root/var/lib/dbus/machine-id") && return 0
	machine_id=$(read_id_file "$state_dir/machine-id") && return 0
	prepare_state_dir
	machine_id=$(openssl rand -hex 16)
	_tmp=$state_dir/machine-id.$$.tmp
	printf '%s\n' "$machine_id" >"$_tmp" 2>/dev/null || fail "cannot write $state_dir/machine-id"
	# ln fails if the name exists: two runs starting at once agree on the first id.
	if ! ln "$_tmp" "$state_dir/machine-id" 2>/dev/null; then
		if _m=$(read_id_file "$state_dir/machine-id"); then
			machine_id=$_m
		else
			mv -f "$_tmp" "$state_dir/machine-id"
		fi
	fi
	rm -f "$_tmp"
}

# SMC names architectures the way uname -m does, except aarch64 (arm64) and the x86 32-bit family (i386).
map_arch() {
	case $1 in
	x86_64 | amd64) printf 'x86_64' ;;
	aarch64 | arm64 | aarch64_be) printf 'arm64' ;;
	i386 | i486 | i586 | i686) printf 'i386' ;;
	*) printf '%s' "$1" ;;
	esac
}

# os-release(5) as src/agent/probe-os.ts parses it; prints NAME (else PRETTY_NAME) and VERSION_ID.
parse_os_release() {
	awk '
		BEGIN { bs = sprintf("%c", 92); dq = sprintf("%c", 34); sq = sprintf("%c", 39) }
		{
			line = $0
			sub(/^[ \t\r\f\v]+/, "", line)
			if (!match(line, /^[A-Za-z_][A-Za-z0-9_]*=/)) next
			k = substr(line, 1, RLENGTH - 1); v = substr(line, RLENGTH + 1)
			sub(/[ \t\r\f\v]+$/, "", v)
			if (length(v) >= 2 && substr(v, 1, 1) == dq && substr(v, length(v), 1) == dq) {
				v = substr(v, 2, length(v) - 2); out = ""
				for (i = 1; i <= length(v); i++) {
					c = substr(v, i, 1)
					if (c == bs && i < length(v) && index(dq bs "$`", substr(v, i + 1, 1))) { i++; c = substr(v, i, 1) }
					out = out c
				}
				v = out
			} else if (length(v) >= 2 && substr(v, 1, 1) == sq && substr(v, length(v), 1) == sq) {
				v = substr(v, 2, length(v) - 2)
			}
			val[k] = v
		}
		END { name = val["NAME"]; if (name == "") name = val["PRETTY_NAME"]; print name; print val["VERSION_ID"] }' "$1"
}

# Sets os_name and os_version from /etc/os-release, else the older release files.
probe_os() {
	os_name=
	os_version=
	_etc=$probe_root/etc
	if [ -r "$_etc/os-release" ]; then
		_o=$(parse_os_release "$_etc/os-release")
		os_name=${_o%%"
"*}
		os_version=${_o#*"
"}
		[ "$os_version" = "$_o" ] && os_version=
	fi
	[ -n "$os_name" ] && return 0
	os_version=
	if _l=$(read_first "$_etc/redhat-release") && [ -n "$_l" ]; then
		# "CentOS release 6.10 (Final)", "Red Hat Enterprise Linux Server release 7.9 (Maipo)"
		case $_l in
		*" release "*)
			os_name=${_l%% release *}
			_r=${_l#* release }
			os_version=${_r%% *}
			;;
		*) os_name=$_l ;;
		esac
	elif _l=$(read_first "$_etc/SuSE-release") && [ -n "$_l" ]; then
		# "SUSE Linux Enterprise Server 11 (x86_64)" + "VERSION = 11" + "PATCHLEVEL = 4" -> 11.4
		_s=$(awk -F= '
			NR == 1 { name = $0; sub(/ *\([^)]*\) *$/, "", name); sub(/ +[0-9][0-9.]*$/, "", name) }
			$1 ~ /^ *VERSION *$/ { v = $2; gsub(/ /, "", v) }
			$1 ~ /^ *PATCHLEVEL *$/ { p = $2; gsub(/ /, "", p) }
			END { if (p != "" && p != "0" && index(v, ".") == 0) v = v "." p; print name; print v }' "$_etc/SuSE-release")
		os_name=${_s%%"
"*}
		os_version=${_s#*"
"}
	elif _l=$(read_first "$_etc/alpine-release") && [ -n "$_l" ]; then
		os_name='Alpine Linux'
		os_version=$_l
	fi
	if [ -z "$os_name" ]; then
		if [ -n "$probe_root" ]; then os_name=Linux; else os_name=$(uname -s); fi
	fi
}

# Cuts a value to at most $2 code points (UTF-8 continuation bytes do not start one).
clip() {
	if [ ${#1} -le "$2" ]; then
		printf '%s' "$1"
		return 0
	fi
	printf '%s\n' "$1" | awk -v max="$2" '
		BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
		NR == 1 {
			n = 0
			for (i = 1; i <= length($0); i++) { o = ord[substr($0, i, 1)]; if (o < 128 || o >= 192) { n++; if (n > max) break } }
			printf "%s", substr($0, 1, i - 1)
		}'
}

trim() {
	_t=$1
	while :; do case $_t in [' 	']*) _t=${_t#?} ;; *) break ;; esac; done
	while :; do case $_t in *[' 	']) _t=${_t%?} ;; *) break ;; esac; done
	printf '%s' "$_t"
}

# "Debian GNU/Linux" + "12" -> "Debian GNU/Linux 12"; a name that already ends with its version keeps it once.
platform_of() {
	if [ -z "$os_version" ]; then
		_p=$os_name
	else
		case $os_name in *"$os_version") _p=$os_name ;; *) _p="$os_name $os_version" ;; esac
	fi
	clip "$(trim "$_p")" 128
}

probe_cpu_memory() {
	cores=
	if [ -n "$probe_root" ]; then
		[ -r "$probe_root/proc/cpuinfo" ] && cores=$(awk '/^processor[ \t]*:/ { n++ } END { print n + 0 }' "$probe_root/proc/cpuinfo")
	else
		cores=$(nproc 2>/dev/null) || cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null) || cores=
		is_uint "$cores" || cores=$(awk '/^processor[ \t]*:/ { n++ } END { print n + 0 }' /proc/cpuinfo 2>/dev/null)
	fi
	is_uint "$cores" && [ "$cores" -ge 1 ] || cores=1
	# MemTotal in KiB, as os.totalmem() reads it; 64-bit shell arithmetic.
	memory=0
	_kb=$(awk '$1 == "MemTotal:" { print $2; exit }' "$probe_root/proc/meminfo" 2>/dev/null)
	while :; do case $_kb in 0?*) _kb=${_kb#0} ;; *) break ;; esac; done
	case $_kb in '' | *[!0-9]*) ;; *) [ ${#_kb} -le 15 ] && memory=$((_kb * 1024)) ;; esac
}

# IPv6 written as inet_ntop does: lower-case, no leading zeros, the longest run of two or more
# zero groups as "::".
IPV6_COMPRESS='
	function compress(h,   i, g, n, best, bestlen, run, start, out) {
		n = 0
		for (i = 1; i <= 32; i += 4) { g = tolower(substr(h, i, 4)); sub(/^0+/, "", g); if (g == "") g = "0"; grp[++n] = g }
		best = 0; bestlen = 0; run = 0
		for (i = 1; i <= 8; i++) {
			if (grp[i] == "0") { if (run == 0) start = i; run++; if (run > bestlen) { bestlen = run; best = start } }
			else run = 0
		}
		if (bestlen < 2) best = 0
		out = ""
		for (i = 1; i <= 8; i++) {
			if (best && i == best) { out = out "::"; i += bestlen - 1; continue }
			out = out ((out == "" || substr(out, length(out), 1) == ":") ? "" : ":") grp[i]
		}
		return out
	}
	function linklocal(a,   h) { h = a; sub(/:.*/, "", h); h = tolower(h); return length(h) == 4 && substr(h, 1, 3) ~ /^fe[89ab]$/ }
'

# Prints "4 <address>" and "6 <address>" lines: every address but loopback and link-local IPv6,
# each once, in interface order.
probe_addresses() {
	_ipaddr=
	if [ -n "$probe_root" ]; then
		[ -r "$probe_root/ip-addr.txt" ] && _ipaddr=$probe_root/ip-addr.txt
	elif command -v ip >/dev/null 2>&1; then
		make_tmp
		ip -o addr 2>/dev/null >"$tmp_dir/ip-addr" && [ -s "$tmp_dir/ip-addr" ] && _ipaddr=$tmp_dir/ip-addr
	fi
	if [ -n "$_ipaddr" ]; then
		awk "$IPV6_COMPRESS"'
			$3 != "inet" && $3 != "inet6" { next }
			$2 == "lo" || index($0, " scope host ") { next }
			{
				a = $4; sub(/\/.*/, "", a); sub(/%.*/, "", a)
				if ($3 == "inet6" && linklocal(a)) next
				f = ($3 == "inet") ? 4 : 6
				if (!((f, a) in seen)) { seen[f, a] = 1; print f, a }
			}' "$_ipaddr"
		return 0
	fi
	# No `ip`: the kernel's own tables.
	awk '
		/\|--/ { ip = $2 }
		/\/32 host LOCAL/ { if (ip !~ /^127\./ && !(ip in seen)) { seen[ip] = 1; print 4, ip } }' "$probe_root/proc/net/fib_trie" 2>/dev/null
	awk "$IPV6_COMPRESS"'
		NF >= 6 && $6 != "lo" && $4 != "10" {
			a = compress($1)
			if (!linklocal(a) && !(a in seen)) { seen[a] = 1; print 6, a }
		}' "$probe_root/proc/net/if_inet6" 2>/dev/null
}

# Every entry of /sys/block with a numeric size, as tab-separated lines for pick_disks:
# "D name sectors dev dm-name", "P disk partition dev", "S device slave".
block_table() {
	for _d in "$probe_root"/sys/block/*; do
		[ -r "$_d/size" ] || continue
		_name=${_d##*/}
		_size=$(read_first "$_d/size")
		case $_size in '' | *[!0-9]*) continue ;; esac
		_dev=$(read_first "$_d/dev")
		_dm=$(read_first "$_d/dm/name")
		printf 'D\t%s\t%s\t%s\t%s\n' "$_name" "$_size" "$_dev" "$_dm"
		for _p in "$_d/$_name"*; do
			[ -r "$_p/size" ] || continue
			_psize=$(read_first "$_p/size")
			case $_psize in '' | *[!0-9]*) continue ;; esac
			printf 'P\t%s\t%s\t%s\n' "$_name" "${_p##*/}" "$(read_first "$_p/dev")"
		done
		for _s in "$_d"/slaves/*; do
			[ -e "$_s" ] || [ -L "$_s" ] || continue
			printf 'S\t%s\t%s\n' "$_name" "${_s##*/}"
		done
	done
}

# The system disk (the disk holding "/", through partitions, device-mapper/LVM and md RAID; the
# largest disk when "/" is on none) and the data disks, as src/agent/probe-disks.ts picks them.
# Appends SystemDiskSize and DataDisk.N.* to the parameter file (hex lines, see add_param).
pick_disks() {
	_mi=$probe_root/proc/self/mountinfo
	[ -n "$probe_root" ] || _mi=/proc/self/mountinfo
	awk -v table="$1" -v mountinfo="$_mi" -v mounts="$probe_root/proc/mounts" '
		BEGIN {
			for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
			bs = sprintf("%c", 92)
			while ((getline line < table) > 0) {
				split(line, f, "\t")
				if (f[1] == "D") {
					isdev[f[2]] = 1; sectors[f[2]] = f[3] + 0; devs[++ndev] = f[2]
					if (f[4] != "") bynum[f[4]] = f[2]
					if (f[5] != "") bydm[f[5]] = f[2]
				} else if (f[1] == "P") {
					parent[f[3]] = f[2]; if (f[4] != "") bynum[f[4]] = f[3]
				} else if (f[1] == "S") {
					nsl[f[2]]++; sl[f[2], nsl[f[2]]] = f[3]
				}
			}
			# proc_pid_mountinfo(5): id parent major:minor root mountpoint options [optional...] - fstype source superopts
			nm = 0
			while ((getline line < mountinfo) > 0) {
				nf = split(line, f, " ")
				dash = 0
				for (k = 7; k <= nf; k++) if (f[k] == "-") { dash = k; break }
				if (nf < 7 || dash == 0 || dash + 2 > nf) continue
				nm++; msrc[nm] = unesc(f[dash + 2]); mpt[nm] = unesc(f[5]); mnum[nm] = f[3]; mroot[nm] = unesc(f[4]); hasroot[nm] = 1
			}
			if (nm == 0) while ((getline line < mounts) > 0) {
				nf = split(line, f, " ")
				if (nf < 3) continue
				nm++; msrc[nm] = unesc(f[1]); mpt[nm] = unesc(f[2]); mnum[nm] = ""; hasroot[nm] = 0
			}

			nd = 0
			for (i = 1; i <= ndev; i++) if (isdisk(devs[i])) disks[++nd] = devs[i]
			for (i = 2; i <= nd; i++) { d = disks[i]; for (j = i - 1; j >= 1 && before(d, disks[j]); j--) disks[j + 1] = disks[j]; disks[j + 1] = d }

			# The last mount on "/" is the one in effect.
			rootm = 0
			for (m = 1; m <= nm; m++) if (mpt[m] == "/") rootm = m
			sys = ""
			if (rootm) {
				n = nameof(rootm)
				if (n != "") { split("", seen); res = ""; under(n); k = split(res, arr, " "); for (j = 1; j <= k; j++) if (sys == "" || before(arr[j], sys)) sys = arr[j] }
			}
			if (sys == "") for (i = 1; i <= nd; i++) if (sys == "" || !(sectors[sys] >= sectors[disks[i]])) sys = disks[i]

			for (m = 1; m <= nm; m++) {
				# A bind mount shows a subdirectory elsewhere; it says nothing about where the disk lives.
				if (hasroot[m] && mroot[m] != "/") continue
				n = nameof(m)
				if (n == "") continue
				split("", seen); res = ""; under(n)
				k = split(res, arr, " ")
				for (j = 1; j <= k; j++) if (!(arr[j] in mp)) mp[arr[j]] = mpt[m]
			}

			if (sys != "") emit("SystemDiskSize", small(gib(sectors[sys])))
			idx = 0
			for (i = 1; i <= nd; i++) {
				d = disks[i]
				if (d == sys) continue
				if (++idx > 64) break
				emit("DataDisk." idx ".Index", idx)
				emit("DataDisk." idx ".Path", clip(mp[d], 256))
				emit("DataDisk." idx ".Size", small(gib(sectors[d])))
			}
		}
		# The kernel writes space, tab, newline and backslash in mount fields as \040 \011 \012 \134.
		function unesc(s,   out, i, c, d) {
			if (index(s, bs) == 0) return s
			out = ""
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1); d = substr(s, i + 1, 3)
				if (c == bs && d ~ /^[0-7][0-7][0-7]$/) { out = out sprintf("%c", substr(d, 1, 1) * 64 + substr(d, 2, 1) * 8 + substr(d, 3, 1)); i += 3 }
				else out = out c
			}
			return out
		}
		# Loop files, RAM disks, optical drives, network block devices, floppies are not disks;
		# dm-* and md* are composites, resolved through their slaves.
		function isdisk(n) { return sectors[n] > 0 && nsl[n] + 0 == 0 && n !~ /^(loop|ram|zram|sr|nbd|fd|dm-|md)/ }
		# Kernel naming order: vdb before vdaa, nvme2n1 before nvme10n1.
		function before(a, b) { if (length(a) != length(b)) return length(a) < length(b); return (natkey(a) "") < (natkey(b) "") }
		function natkey(s,   out) {
			out = ""
			while (match(s, /[0-9]+/)) { out = out substr(s, 1, RSTART - 1) sprintf("%015.0f", substr(s, RSTART, RLENGTH) + 0); s = substr(s, RSTART + RLENGTH) }
			return out s
		}
		function nameof(m,   rest) {
			if (mnum[m] != "" && (mnum[m] in bynum)) return bynum[mnum[m]]
			if (substr(msrc[m], 1, 5) != "/dev/") return ""
			rest = substr(msrc[m], 6)
			if (substr(rest, 1, 7) == "mapper/") { rest = substr(rest, 8); return (rest in bydm) ? bydm[rest] : "" }
			gsub(/\//, "!", rest)
			return ((rest in isdev) || (rest in parent)) ? rest : ""
		}
		# The physical disks under a device: a partition s disk, the members of an LVM volume or RAID array.
		function under(n,   k) {
			if (n in seen) return
			seen[n] = 1
			if (n in parent) { under(parent[n]); return }
			if (!(n in isdev)) return
			if (nsl[n] + 0 > 0) { for (k = 1; k <= nsl[n]; k++) under(sl[n, k]); return }
			if (isdisk(n)) res = res " " n
		}
		# Whole GiB, rounded to nearest; a non-empty disk never reports 0 (sectorsToGiB).
		function gib(s,   r) { if (s <= 0) return 0; r = int((s + 1048576) / 2097152); return r < 1 ? 1 : r }
		function small(n) { return n > 1048576 ? 1048576 : n }
		function clip(s, max,   i, n, o) {
			n = 0
			for (i = 1; i <= length(s); i++) { o = ord[substr(s, i, 1)]; if (o < 128 || o >= 192) { n++; if (n > max) return substr(s, 1, i - 1) } }
			return s
		}
		function tohex(s,   i, out) { out = ""; for (i = 1; i <= length(s); i++) out = out sprintf("%02x", ord[substr(s, i, 1)]); return out }
		function emit(k, v) { print tohex(k) " " tohex(v "") }'
}

# SystemInfo: a JSON object of at most 1 KiB, as src/agent/import.ts systemInfoOf writes it.
# Input lines: hostname, kernel, os, cores, memory, then "4 addr" / "6 addr".
system_info_json() {
	awk '
		BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i; bs = sprintf("%c", 92); q = sprintf("%c", 34) }
		NR == 1 { host = $0; next }
		NR == 2 { kern = $0; next }
		NR == 3 { os = $0; next }
		NR == 4 { cores = $0; next }
		NR == 5 { mem = $0; next }
		$1 == "4" { v4[++n4] = $2; next }
		$1 == "6" { v6[++n6] = $2; next }
		function js(s,   out, i, c, o) {
			out = q
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1); o = ord[c]
				if (c == q || c == bs) out = out bs c
				else if (o < 32) {
					if (o == 8) out = out bs "b"; else if (o == 9) out = out bs "t"; else if (o == 10) out = out bs "n"
					else if (o == 12) out = out bs "f"; else if (o == 13) out = out bs "r"; else out = out bs sprintf("u%04x", o)
				} else out = out c
			}
			return out q
		}
		function clip(s, max,   i, n, o) {
			n = 0
			for (i = 1; i <= length(s); i++) { o = ord[substr(s, i, 1)]; if (o < 128 || o >= 192) { n++; if (n > max) return substr(s, 1, i - 1) } }
			return s
		}
		function build(   s, i) {
			s = "{" q "hostname" q ":" js(host) "," q "ipv4" q ":["
			for (i = 1; i <= n4; i++) s = s (i > 1 ? "," : "") js(v4[i])
			s = s "]," q "ipv6" q ":["
			for (i = 1; i <= n6; i++) s = s (i > 1 ? "," : "") js(v6[i])
			return s "]," q "cores" q ":" cores "," q "memory" q ":" mem "," q "kernel" q ":" js(kern) "," q "os" q ":" js(os) "}"
		}
		END {
			# Addresses are dropped from the end (IPv6 first) until it fits; only then are names cut.
			while (length(build()) > 1024 && (n6 > 0 || n4 > 0)) { if (n6 > 0) n6--; else n4-- }
			if (length(build()) > 1024) { host = clip(host, 64); kern = clip(kern, 64); os = clip(os, 64) }
			printf "%s", build()
		}'
}

# What the machine says about itself, from /proc, /sys and /etc (under SMCD_PROBE_ROOT when set,
# where proc/sys/kernel/{hostname,osrelease,arch} stand in for uname). Sets the probe_* values.
probe_machine() {
	if [ -n "$probe_root" ]; then
		probe_hostname=$(read_first "$probe_root/proc/sys/kernel/hostname")
		probe_kernel=$(read_first "$probe_root/proc/sys/kernel/osrelease")
		_arch=$(read_first "$probe_root/proc/sys/kernel/arch") || _arch=$(read_first "$probe_root/arch")
	else
		probe_hostname=$(uname -n)
		probe_kernel=$(uname -r)
		_arch=$(uname -m)
	fi
	probe_arch=$(map_arch "$_arch")
	# "6.1.0-18-amd64" -> 6; 0 when the release does not start with a number.
	_k=${probe_kernel%%[!0-9]*}
	while :; do case $_k in 0?*) _k=${_k#0} ;; *) break ;; esac; done
	is_uint "$_k" || _k=0
	probe_kernel_level=$_k
	probe_os
	[ -n "$os_version" ] || os_version=$probe_kernel
	probe_platform=$(platform_of)
	probe_cpu_memory
	make_tmp
	probe_addresses >"$tmp_dir/addresses"
	probe_system_info=$({
		printf '%s\n%s\n%s\n%s\n%s\n' "$probe_hostname" "$probe_kernel" "$probe_platform" "$cores" "$memory"
		cat "$tmp_dir/addresses"
	} | system_info_json)
}

# The ImportSourceServer parameters of this machine, in the order src/agent/import.ts importParams
# lists them.
add_import_params() {
	add_param MachineId "$machine_id"
	[ -n "$opt_name" ] && add_param Name "$opt_name"
	[ -n "$opt_desc_set" ] && add_param Description "$opt_desc"
	add_param Hostname "$(clip "$probe_hostname" 255)"
	add_param Platform "$probe_platform"
	add_param Architecture "$(clip "$probe_arch" 32)"
	add_param KernelLevel "$probe_kernel_level"
	add_param AgentVersion "$(clip "$agent_version" 64)"
	block_table >"$tmp_dir/block"
	flush_params
	pick_disks "$tmp_dir/block" >>"$params_file"
	add_param SystemInfo "$probe_system_info"
}

# --- refusals explained -------------------------------------------------------------------------

one_liner() {
	printf 'curl -fsSL %s/agent/smcd-agent.sh | SMCD_CODE_ID=at-... SMCD_CODE=... sh -s -- import' "${1:-https://smcd.example.com}"
}

# One paragraph an operator can act on, for a failed import. Only ids and the endpoint appear in
# it: never the activation code or a source key secret.
explain_import() {
	_which="($code_id, $api_code)"
	_said=$(printable "$api_message")
	case $api_code in
	AccessToken.Expired) fail "the activation code has expired: create a new one $_which" ;;
	AccessToken.Disabled) fail "the activation code has been disabled: ask for a new one $_which" ;;
	AccessToken.CountExceeded) fail "the activation code has been used the maximum number of times: create a new one; machines it imported before can still re-import with it $_which" ;;
	AccessToken.IpNotAllowed) fail "the activation code may not be used from this machine's address: the server at $endpoint said \"$_said\"; its IpAddressRange does not include the address the server sees this machine connect from; import from an allowed address or use a code whose range includes it $_which" ;;
	SourceServer.MachineIdInUse) fail "another source already owns this machine's MachineId ($machine_id): the server at $endpoint said \"$_said\". The machine was cloned, or the source key of its earlier import ($state_file) was lost. Delete that source on the server, or import from the machine that holds its key; for a clone, set SMCD_MACHINE_ID to an id of its own (SourceServer.MachineIdInUse)" ;;
	InvalidAccessKeyId.NotFound) fail "the activation code $code_id is not known to $endpoint: it was mistyped or has been deleted (InvalidAccessKeyId.NotFound)" ;;
	SignatureDoesNotMatch) fail "the activation code does not match its id $code_id: check SMCD_CODE (SignatureDoesNotMatch)" ;;
	Forbidden.RAM) fail "the credential is not an activation code: SMCD_CODE_ID must be the AccessTokenId (at-...) that CreateAccessToken returned (Forbidden.RAM)" ;;
	*) explain_common ;;
	esac
}

explain_common() {
	_said=$(printable "$api_message")
	case $api_code in
	InvalidTimeStamp.Expired) fail "this machine's clock ($(date -u +%Y-%m-%dT%H:%M:%SZ) UTC) is more than 15 minutes away from the server's: set the clock (NTP) and try again (InvalidTimeStamp.Expired)" ;;
	Throttling.User) fail "$endpoint is refusing this address after too many failed authentications (Throttling.User): wait a minute, check the code, and try again" ;;
	ServiceUnavailable) fail "$endpoint cannot reach its store right now (ServiceUnavailable): try again shortly" ;;
	HTTP*)
		if [ "$transport" = wget ] && [ "$wget_kind" = busybox ]; then
			fail "$endpoint refused the request with HTTP ${api_code#HTTP}; BusyBox wget does not show the reason: install curl and run this again to see it"
		fi
		fail "$endpoint answered HTTP ${api_code#HTTP} without an SMC error: is it an smcd server?"
		;;
	*) fail "$endpoint refused the request: $api_code: $_said${api_request_id:+ (RequestId $api_request_id)}" ;;
	esac
}

explain_unreachable() {
	fail "cannot reach $endpoint: $transport_error. Is the smcd server running, and is the endpoint right? Set it with --endpoint URL or SMCD_ENDPOINT."
}

# --- commands -----------------------------------------------------------------------------------

# --endpoint, else SMCD_ENDPOINT, else the URL the server baked in when it served this file.
resolve_endpoint() {
	endpoint=${opt_endpoint:-${SMCD_ENDPOINT:-}}
	if [ -z "$endpoint" ] && [ "$served_endpoint" != "__SMCD_""PUBLIC_URL__" ]; then endpoint=$served_endpoint; fi
	[ -n "$endpoint" ] || return 1
	is_endpoint "$endpoint" || usage_fail "the endpoint must be an http:// or https:// URL, got \"$(printable "$endpoint")\""
	endpoint=$(strip_slashes "$endpoint")
	return 0
}

# The activation code: SMCD_CODE_ID / SMCD_CODE (or the Node agent's SMCD_TOKEN_ID /
# SMCD_TOKEN_CODE), or two lines on stdin. Removed from the environment at once, so no child
# process inherits it.
read_code() {
	code_id=${SMCD_CODE_ID:-${SMCD_TOKEN_ID:-}}
	code=${SMCD_CODE:-${SMCD_TOKEN_CODE:-}}
	unset SMCD_CODE SMCD_TOKEN_CODE SMCD_CODE_ID SMCD_TOKEN_ID
	if [ -n "$opt_code_stdin" ]; then
		IFS= read -r code_id || [ -n "$code_id" ] || usage_fail "--code-stdin: expected the code id and the code on two lines of stdin"
		IFS= read -r code || [ -n "$code" ] || usage_fail "--code-stdin: expected the code id and the code on two lines of stdin"
	fi
	code_id=$(trim "${code_id%"$(printf '\r')"}")
	code=$(trim "${code%"$(printf '\r')"}")
	if [ -z "$code_id" ] && [ -z "$code" ]; then
		usage_fail "no activation code: set SMCD_CODE_ID and SMCD_CODE (or pass them on two lines of stdin with --code-stdin)"
	fi
	[ -n "$code_id" ] || usage_fail "SMCD_CODE_ID (the AccessTokenId, at-...) is required with SMCD_CODE"
	[ -n "$code" ] || usage_fail "SMCD_CODE is required with SMCD_CODE_ID"
	case $code_id in *[!A-Za-z0-9._-]*) usage_fail "SMCD_CODE_ID must be the AccessTokenId (at-...)" ;; esac
	case $code in *[!A-Za-z0-9]*) usage_fail "SMCD_CODE must be the activation code (letters and digits); check what was pasted" ;; esac
}

cmd_import() {
	read_code
	resolve_endpoint || usage_fail "no endpoint: pass --endpoint URL or set SMCD_ENDPOINT to the smcd server's URL"
	pick_transport "$endpoint"
	init_state_path
	# The state directory first: a directory we cannot write fails before the import uses the code.
	prepare_state_dir
	[ -w "$state_dir" ] || fail "cannot write to the state directory $state_dir"
	load_state || :
	find_machine_id
	probe_machine
	new_request
	add_import_params
	# API.md 5.2: proof of possession of this machine's source key, whenever one is saved.
	_proof_id=
	_proof_secret=
	if [ -n "$st_key_id" ] && [ -n "$st_secret" ] && { [ -z "$st_machine_id" ] || [ "$st_machine_id" = "$machine_id" ]; }; then
		_proof_id=$st_key_id
		_proof_secret=$st_secret
	elif [ -z "$st_key_id" ] && load_node_state; then
		# Imported by the Node agent only: its source.json holds the key of this machine.
		_proof_id=$nd_key_id
		_proof_secret=$nd_secret
	fi
	if [ -n "$_proof_id" ]; then
		add_param SourceKeyId "$_proof_id"
		add_param SourceProof "$(source_proof "$_proof_secret" "$machine_id" "$nonce")"
	fi
	_proof_secret=
	nd_secret=
	call_api ImportSourceServer "$code_id" "$code" "$import_timeout"
	case $? in
	1) explain_import ;;
	2) explain_unreachable ;;
	esac
	code=
	_sid=$(kv_get SourceId "$answer_file")
	_kid=$(kv_get SourceKeyId "$answer_file")
	_sec=$(kv_get SourceKeySecret "$answer_file")
	_rate=$(kv_get HeartbeatRate "$answer_file")
	if ! is_word "$_sid" 64 || ! is_word "$_kid" 64 || ! is_alnum "$_sec" 128; then
		fail "$endpoint answered ImportSourceServer without a SourceId and source key: is it an smcd server?"
	fi
	is_rate "$_rate" || _rate=$default_rate
	st_endpoint=$endpoint
	st_source_id=$_sid
	st_key_id=$_kid
	st_secret=$_sec
	st_rate=$_rate
	st_machine_id=$machine_id
	_sec=
	save_state
	st_secret=
	say "Import Source Server [$st_source_id] Successfully!"
	if [ -n "$opt_no_install" ] || [ "${SMCD_NO_INSTALL:-}" = 1 ]; then
		return 0
	fi
	if [ "$(id -u)" = 0 ]; then
		(do_install) || warn "warning: the import succeeded, but heartbeats were not installed: run \"sh smcd-agent.sh install\" as root, or keep \"sh smcd-agent.sh heartbeat --loop\" running"
	else
		non_root_hint
	fi
	return 0
}

non_root_hint() {
	if is_script_file "$0"; then _self="sh $0"; else _self="sh ~/.smcd-agent/smcd-agent.sh"; fi
	say "Heartbeats keep source $st_source_id Available (3 missed beats make it Unavailable); not running as root, nothing was installed. Either:"
	say "  run the import as root, which installs a systemd timer or a cron entry; or"
	is_script_file "$0" || say "  save the agent: curl -fsSL $endpoint/agent/smcd-agent.sh -o ~/.smcd-agent/smcd-agent.sh, then"
	say "  keep \"$_self heartbeat --loop\" running, or add to your crontab (crontab -e): * * * * * $_self heartbeat >/dev/null 2>&1"
}

# One ReportSourceServerHeartbeat with the saved source key. Returns 0 when beaten, 1 when the
# server refused or was unreachable (after saying why), 3 when the key is no longer accepted.
beat_once() {
	probe_machine
	new_request
	add_param SourceId "$st_source_id"
	add_param SystemInfo "$probe_system_info"
	call_api ReportSourceServerHeartbeat "$st_key_id" "$st_secret" "$heartbeat_timeout"
	_rc=$?
	if [ "$_rc" -eq 2 ]; then
		warn "heartbeat for $st_source_id failed: cannot reach $endpoint: $transport_error"
		return 1
	fi
	if [ "$_rc" -eq 1 ]; then
		case $api_code in
		InvalidAccessKeyId.NotFound | InvalidAccessKeyId.Inactive | SignatureDoesNotMatch | InvalidSourceId.NotFound | Forbidden.RAM)
			return 3
			;;
		esac
		warn "heartbeat for $st_source_id failed: $endpoint answered $api_code: $(printable "$api_message")"
		return 1
	fi
	_rate=$(kv_get HeartbeatRate "$answer_file")
	if is_rate "$_rate" && [ "$_rate" != "$st_rate" ]; then
		st_rate=$_rate
		save_state
		if [ -f "$install_root/etc/systemd/system/$unit_name.timer" ]; then
			warn "the server now asks for a heartbeat every $st_rate s: run \"smcd-agent install\" again so the timer follows"
		fi
	fi
	return 0
}

# A key the server refused: another import on this machine may have replaced it (our state file
# or the Node agent's source.json); otherwise the source was deleted.
key_refused() {
	_old=$st_secret
	load_state || :
	if [ -n "$st_secret" ] && [ "$st_secret" != "$_old" ]; then
		_old=
		return 0
	fi
	if load_node_state && [ "$nd_source_id" = "$st_source_id" ] && [ "$nd_secret" != "$_old" ]; then
		st_key_id=$nd_key_id
		st_secret=$nd_secret
		nd_secret=
		_old=
		warn "the key of $st_source_id was replaced by the Node agent's import; using the new one"
		save_state
		return 0
	fi
	_old=
	fail "$endpoint no longer accepts the key of source $st_source_id ($api_code): the source was deleted or rejected (or its key replaced by an import elsewhere). Import this machine again with an activation code: $(one_liner "$endpoint")"
}

cmd_heartbeat() {
	init_state_path
	load_state || fail "no saved source key at $state_file: import this machine first: $(one_liner "$(resolve_endpoint && printf '%s' "$endpoint")")"
	[ -n "$st_source_id" ] && [ -n "$st_key_id" ] && [ -n "$st_secret" ] ||
		fail "$state_file is damaged (no valid source id or key): import this machine again with an activation code"
	resolve_endpoint || endpoint=$st_endpoint
	[ -n "$endpoint" ] || fail "$state_file names no valid endpoint: pass --endpoint URL or set SMCD_ENDPOINT"
	pick_transport "$endpoint"
	if [ -z "$opt_loop" ]; then
		beat_once
		case $? in
		0) return 0 ;;
		3)
			key_refused
			beat_once
			case $? in 0) return 0 ;; 3) key_refused ;; esac
			;;
		esac
		cleanup
		exit 1
	fi
	trap 'stop_loop SIGTERM' TERM
	trap 'stop_loop SIGINT' INT
	say "Sending heartbeats for $st_source_id to $endpoint every $st_rate s; stop with SIGTERM or Ctrl-C."
	while :; do
		beat_once
		if [ $? -eq 3 ]; then key_refused; fi
		sleep "$st_rate" &
		sleep_pid=$!
		wait "$sleep_pid"
		sleep_pid=
	done
}

stop_loop() {
	[ -n "${sleep_pid:-}" ] && kill "$sleep_pid" 2>/dev/null
	say "Stopping heartbeats ($1)."
	cleanup
	exit 0
}

# --- install / uninstall ------------------------------------------------------------------------

is_script_file() {
	[ -f "$1" ] && [ -r "$1" ] && grep -q '^served_endpoint=' "$1" 2>/dev/null
}

systemd_present() { [ -d "$install_root/run/systemd/system" ]; }

unit_text() {
	cat <<EOF
# Installed by smcd-agent.sh install: one heartbeat for this migration source.
[Unit]
Description=smcd agent heartbeat (keeps this migration source Available)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=$installed_path heartbeat
${SMCD_STATE_FILE:+Environment=SMCD_STATE_FILE=$SMCD_STATE_FILE
}TimeoutStartSec=60
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-$state_dir
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=
SystemCallArchitectures=native
EOF
}

timer_text() {
	cat <<EOF
# Installed by smcd-agent.sh install: a heartbeat every HeartbeatRate seconds ($1 s).
[Unit]
Description=smcd agent heartbeat every $1 s

[Timer]
OnBootSec=$1s
OnUnitActiveSec=$1s
AccuracySec=1s

[Install]
WantedBy=timers.target
EOF
}

# Writes file $1 with the text on stdin, mode $2, through a temporary file.
write_file() {
	_tmp=$1.$$.tmp
	cat >"$_tmp" && chmod "$2" "$_tmp" && mv -f "$_tmp" "$1" || {
		rm -f "$_tmp"
		return 1
	}
}

cron_line() {
	printf '* * * * * %s%s%s heartbeat >/dev/null 2>&1' "$1" "${SMCD_STATE_FILE:+SMCD_STATE_FILE=$SMCD_STATE_FILE }" "$installed_path"
}

# Runs in a subshell (fail exits it, not the caller). Copies the agent to /usr/local/sbin, then a
# systemd timer, else a cron entry, else advice.
do_install() {
	case ${SMCD_STATE_FILE:-} in *[!A-Za-z0-9._/-]*)
		fail "SMCD_STATE_FILE has characters that cannot be written into a unit or crontab: use a path of letters, digits, . _ / -"
		;;
	esac
	load_state || :
	_rate=$st_rate
	is_rate "$_rate" || _rate=$default_rate
	make_tmp
	if is_script_file "$0"; then
		cat "$0" >"$tmp_dir/agent" || fail "cannot read $0"
	else
		# Piped into sh: $0 is not this script. Fetch it again from the server.
		if ! resolve_endpoint; then endpoint=$st_endpoint; fi
		[ -n "$endpoint" ] || fail "this script was not run from a file, and no endpoint is known to download it from: pass --endpoint URL"
		pick_transport "$endpoint"
		http_get "$endpoint/agent/smcd-agent.sh" "$tmp_dir/agent" || fail "cannot download $endpoint/agent/smcd-agent.sh"
		is_script_file "$tmp_dir/agent" || fail "$endpoint/agent/smcd-agent.sh is not the smcd agent"
	fi
	_target=$install_root$installed_path
	# System directories, if missing, are made as a package would make them: 0755.
	(umask 022 && mkdir -p "${_target%/*}") 2>/dev/null
	write_file "$_target" 755 <"$tmp_dir/agent" || fail "cannot install the agent as $_target"
	say "Installed the agent as $installed_path."
	if systemd_present; then
		_dir=$install_root/etc/systemd/system
		(umask 022 && mkdir -p "$_dir") 2>/dev/null
		unit_text | write_file "$_dir/$unit_name.service" 644 || fail "cannot write $_dir/$unit_name.service"
		timer_text "$_rate" | write_file "$_dir/$unit_name.timer" 644 || fail "cannot write $_dir/$unit_name.timer"
		systemctl daemon-reload || fail "systemctl daemon-reload failed"
		systemctl enable --now "$unit_name.timer" || fail "systemctl enable --now $unit_name.timer failed"
		say "Heartbeats every $_rate s by systemd: $unit_name.timer (systemctl status $unit_name.timer)."
	elif [ -d "$install_root/etc/cron.d" ]; then
		# cron runs it every minute: with a 30 s HeartbeatRate the beats are 60 s apart, still
		# within the 3 x 30 = 90 s after which a source turns Unavailable.
		{
			say "# smcd-agent heartbeat: keeps this migration source Available (installed by smcd-agent.sh install)."
			say "# Every minute: fine for a HeartbeatRate of 20 s or more (3 missed beats make a source Unavailable)."
			say "SHELL=/bin/sh"
			say "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
			cron_line 'root '
			printf '\n'
		} | write_file "$install_root/etc/cron.d/smcd-agent" 644 || fail "cannot write $install_root/etc/cron.d/smcd-agent"
		say "Heartbeats every minute by cron: /etc/cron.d/smcd-agent."
	elif command -v crontab >/dev/null 2>&1; then
		{
			crontab -l 2>/dev/null | grep -v '# smcd-agent heartbeat$'
			printf '%s # smcd-agent heartbeat\n' "$(cron_line '')"
		} >"$tmp_dir/crontab"
		crontab - <"$tmp_dir/crontab" || fail "crontab - failed: could not install the heartbeat in the crontab"
		say "Heartbeats every minute by cron (crontab -l shows the entry)."
	else
		fail "no scheduler found (no systemd, no /etc/cron.d, no crontab): keep \"$installed_path heartbeat --loop\" running another way (an init script, a supervisor)"
	fi
	if [ "$_rate" -lt 20 ] && ! systemd_present; then
		warn "warning: the server asks for a heartbeat every $_rate s, and cron beats once a minute: the source will show Unavailable between beats; prefer \"$installed_path heartbeat --loop\""
	fi
}

cmd_install() {
	[ "$(id -u)" = 0 ] || [ -n "$install_root" ] || fail "install writes to /usr/local/sbin and /etc: run it as root (sudo sh smcd-agent.sh install)"
	init_state_path
	# The scratch directory is made here: one made inside the subshell would outlive it.
	make_tmp
	(do_install) || exit 1
}

cmd_uninstall() {
	[ "$(id -u)" = 0 ] || [ -n "$install_root" ] || fail "uninstall removes files from /usr/local/sbin and /etc: run it as root"
	init_state_path
	make_tmp
	_dir=$install_root/etc/systemd/system
	if [ -f "$_dir/$unit_name.timer" ] || [ -f "$_dir/$unit_name.service" ]; then
		systemctl disable --now "$unit_name.timer" || warn "warning: systemctl disable --now $unit_name.timer failed"
		rm -f "$_dir/$unit_name.timer" "$_dir/$unit_name.service"
		systemctl daemon-reload || warn "warning: systemctl daemon-reload failed"
		say "Removed $unit_name.timer and $unit_name.service."
	fi
	if [ -f "$install_root/etc/cron.d/smcd-agent" ]; then
		rm -f "$install_root/etc/cron.d/smcd-agent"
		say "Removed /etc/cron.d/smcd-agent."
	fi
	if command -v crontab >/dev/null 2>&1 && crontab -l 2>/dev/null | grep -q '# smcd-agent heartbeat$'; then
		crontab -l 2>/dev/null | grep -v '# smcd-agent heartbeat$' >"$tmp_dir/crontab"
		crontab - <"$tmp_dir/crontab" || fail "crontab - failed: the heartbeat entry is still in the crontab"
		say "Removed the heartbeat from the crontab."
	fi
	if [ -f "$install_root$installed_path" ]; then
		rm -f "$install_root$installed_path"
		say "Removed $installed_path."
	fi
	_sid=
	_secret_pattern=
	if load_state; then
		_sid=$st_source_id
		if [ -n "$st_secret" ]; then
			printf '%s\n' "$st_secret" >"$tmp_dir/secret-pattern"
			_secret_pattern=$tmp_dir/secret-pattern
		fi
		st_secret=
	fi
	rm -f "$state_file" "$state_file".*.tmp
	# Nothing that held the key may be left: scan what the agent wrote (the pattern is read
	# from a private file, never passed as an argument).
	if [ -n "$_secret_pattern" ]; then
		# The Node agent's source.json holds the same key when the import kept it in step.
		if grep -qF -f "$_secret_pattern" "$(node_state_file)" 2>/dev/null; then
			rm -f "$(node_state_file)"
			say "Removed $(node_state_file) (the Node agent's copy of the same key)."
		fi
		_left=
		for _f in "$state_dir"/* "$_dir/$unit_name".* "$install_root/etc/cron.d/smcd-agent"; do
			[ -f "$_f" ] || continue
			grep -qF -f "$_secret_pattern" "$_f" 2>/dev/null && _left="$_left $_f"
		done
		rm -f "$_secret_pattern"
		[ -z "$_left" ] || fail "the source key is still in:$_left (remove those files by hand)"
	fi
	rmdir "$state_dir" 2>/dev/null
	if [ -n "$_sid" ]; then
		say "Removed the source key ($state_file); no copy of it is left in $state_dir."
		say "Source $_sid still exists on the server: delete it there (smcd source delete $_sid) before importing this machine again."
	else
		say "No saved source key at $state_file."
	fi
	return 0
}

# Prints each import parameter as Key=value (backslash and newline escaped as \\ and \n); no
# secrets, nothing sent.
cmd_probe() {
	init_state_path
	find_machine_id
	probe_machine
	new_request
	add_import_params
	flush_params
	awk '
		BEGIN { for (i = 1; i < 256; i++) chr[sprintf("%02x", i)] = sprintf("%c", i); chr["0a"] = "\\n"; chr["5c"] = "\\\\" }
		function dec(h,   i, out) { out = ""; for (i = 1; i < length(h); i += 2) out = out chr[substr(h, i, 2)]; return out }
		{ print dec($1) "=" dec($2) }' "$params_file"
}

# Hidden, for the tests: signs cases read from stdin. Each case is a line "key:<secret in hex>",
# then "<hex name> <hex value>" lines, then an empty line; prints one V1 (POST) signature per case.
# The values are decoded into shell strings first, so they go through add_param as real ones do.
cmd_sign() {
	make_tmp
	params_file=$tmp_dir/params
	params_raw=$tmp_dir/params.raw
	_secret=
	_have=
	while IFS= read -r _line || [ -n "$_line" ]; do
		if [ -z "$_line" ]; then
			[ -n "$_have" ] && v1_signature "$_secret" && printf '\n'
			_have=
			continue
		fi
		if [ -z "$_have" ]; then
			case $_line in key:*) ;; *) fail "__sign: expected key:<hex>, got $_line" ;; esac
			from_hex "${_line#key:}"
			_secret=$hex_value
			: >"$params_file"
			: >"$params_raw"
			_have=1
			continue
		fi
		from_hex "${_line%% *}"
		_name=$hex_value
		from_hex "${_line#* }"
		add_param "$_name" "$hex_value"
	done
	[ -n "$_have" ] && v1_signature "$_secret" && printf '\n'
	return 0
}

# Hidden, for the tests: the SourceProof of (hex secret, hex machine id, hex nonce) lines on stdin.
cmd_proof() {
	make_tmp
	IFS= read -r _a
	IFS= read -r _b
	IFS= read -r _c
	from_hex "$_a"
	_a=$hex_value
	from_hex "$_b"
	_b=$hex_value
	from_hex "$_c"
	source_proof "$_a" "$_b" "$hex_value"
	printf '\n'
}

cmd_help() {
	_ep=https://smcd.example.com
	[ "$served_endpoint" != "__SMCD_""PUBLIC_URL__" ] && _ep=$served_endpoint
	cat <<EOF
smcd-agent.sh $agent_version: import this machine into smcd (Server Migration Center API) and keep it Available.

On the machine to migrate, with the activation code (its id and code) the operator created:

  curl -fsSL $_ep/agent/smcd-agent.sh | SMCD_CODE_ID=at-... SMCD_CODE=... sh -s -- import
  wget -qO- $_ep/agent/smcd-agent.sh | SMCD_CODE_ID=at-... SMCD_CODE=... sh -s -- import

Usage: smcd-agent.sh <command> [options]

  import [--name N] [--description D] [--endpoint URL] [--code-stdin] [--no-install]
        Probe this machine and import it with the activation code; save the source key; then,
        as root, install the heartbeat (as "install" does) unless --no-install or SMCD_NO_INSTALL=1.
        Prints "Import Source Server [s-...] Successfully!". Importing again updates the same
        source: the saved key proves this machine owns it.
  heartbeat [--loop] [--endpoint URL]
        Send one heartbeat with the saved source key; --loop: one every HeartbeatRate seconds
        until SIGTERM or Ctrl-C.
  install [--endpoint URL]
        As root: copy the agent to $installed_path and send heartbeats with a systemd timer
        (every HeartbeatRate seconds), else a cron entry (every minute: with the default 30 s
        rate, beats 60 s apart stay within the 3 x 30 = 90 s after which a source turns
        Unavailable), else tell how to run "heartbeat --loop".
  uninstall
        Remove the timer or cron entry, the installed copy and the saved source key.
  probe
        Print what this machine reports, one Key=value line per import parameter (no secrets).
  help  This text.

Environment:
  SMCD_CODE_ID, SMCD_CODE   the activation code (also SMCD_TOKEN_ID, SMCD_TOKEN_CODE); never put
                            it in arguments: --code-stdin reads the id and the code from two
                            lines of stdin instead (not with "curl ... | sh", whose stdin is the script)
  SMCD_ENDPOINT             the smcd server's URL (or --endpoint); default: the server this
                            script was downloaded from, else (heartbeat) the one in the state file
  SMCD_CA_FILE              CA certificate file to verify an https server signed by a private CA
                            (the system CA store otherwise; verification cannot be turned off)
  SMCD_STATE_FILE           where the source key is kept (0600): default /var/lib/smcd-agent/state
                            as root, ~/.smcd-agent/state otherwise
  SMCD_MACHINE_ID           the MachineId to report instead of /etc/machine-id (cloned machines)
  SMCD_NO_INSTALL=1         import without installing the heartbeat
  SMCD_HTTP_CLIENT          curl or wget (default: curl when installed). BusyBox wget is used
                            for http:// only: it cannot be relied on to verify certificates.

Exit codes: 0 success, 1 refused or failed (the reason on stderr), 2 usage error.
Needs /bin/sh, curl or wget, openssl, and the usual tools (BusyBox provides them).
EOF
}

# --- main ---------------------------------------------------------------------------------------

command=${1:-help}
[ $# -gt 0 ] && shift
opt_name=
opt_desc=
opt_desc_set=
opt_endpoint=
opt_code_stdin=
opt_no_install=
opt_loop=
while [ $# -gt 0 ]; do
	case $1 in
	--name | --description | --endpoint)
		[ $# -ge 2 ] || usage_fail "$1 needs a value"
		case $1 in
		--name) opt_name=$2 ;;
		--description)
			opt_desc=$2
			opt_desc_set=1
			;;
		--endpoint) opt_endpoint=$2 ;;
		esac
		shift 2
		continue
		;;
	--name=*) opt_name=${1#--name=} ;;
	--description=*)
		opt_desc=${1#--description=}
		opt_desc_set=1
		;;
	--endpoint=*) opt_endpoint=${1#--endpoint=} ;;
	--code-stdin) opt_code_stdin=1 ;;
	--no-install) opt_no_install=1 ;;
	--loop) opt_loop=1 ;;
	-h | --help) command=help ;;
	*) usage_fail "unknown option \"$(printable "$1")\"" ;;
	esac
	shift
done

allow() { # $1: the options this command takes
	for _o in name desc_set endpoint code_stdin no_install loop; do
		eval "_set=\$opt_$_o"
		[ -n "$_set" ] || continue
		case " $1 " in *" $_o "*) ;; *) usage_fail "$command does not take --$(printf '%s' "$_o" | sed 's/_set$//; s/desc/description/; s/_/-/g')" ;; esac
	done
}

case $command in
import)
	allow 'name desc_set endpoint code_stdin no_install'
	cmd_import
	;;
heartbeat)
	allow 'endpoint loop'
	cmd_heartbeat
	;;
install)
	allow 'endpoint'
	cmd_install
	;;
uninstall)
	allow ''
	cmd_uninstall
	;;
probe)
	allow 'name desc_set'
	cmd_probe
	;;
help | -h | --help) cmd_help ;;
version | --version) say "$agent_version" ;;
__sign) cmd_sign ;;
__proof) cmd_proof ;;
*) usage_fail "unknown command \"$(printable "$command")\": expected import, heartbeat, install, uninstall, probe or help" ;;
esac
cleanup
exit 0
