#!/bin/sh
# Makes the example services' API keys with the broker's admin key: one least-privilege key per role
# a service plays, each written to a file named after the setting it fills (read with .NET's
# AddKeyPerFile, where "__" stands for ":"). Files already there are reused as long as the broker
# still knows their key, so it can run at every start; a key the broker no longer has (data wiped,
# key revoked) is made anew.
#
#   BROKER=http://127.0.0.1:8080 ADMIN_KEY=... OUT_DIR=./keys sh examples/compose/make-keys.sh
#
# OUT_DIR/<service>/ gets the service's files (compose mounts one volume per service there);
# KEY_OWNER (a uid) owns them when set; WAIT_SECONDS (default 60) bounds the wait for the broker.
# POSIX sh and curl only: compose runs it in the curlimages/curl image, which has no jq.
set -eu

: "${BROKER:?BROKER is the broker base URL, e.g. http://broker:8080}"
: "${ADMIN_KEY:?ADMIN_KEY is the broker admin key (Broker__Auth__AdminKey)}"
: "${OUT_DIR:?OUT_DIR is the folder to write the key files to}"
BROKER="${BROKER%/}"
mkdir -p "$OUT_DIR"   # readable by others: each service's folder below it is its own (0700)
umask 077

# admin_curl ARGS...: curl with the admin key, given on stdin so it never shows in a process list
admin_curl() {
  printf 'header = "Authorization: Bearer %s"\n' "$ADMIN_KEY" | curl -sS -K - "$@"
}

deadline=$(($(date +%s) + ${WAIT_SECONDS:-60}))
until curl -fsS -o /dev/null --max-time 2 "$BROKER/health/ready" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "make-keys: the broker at $BROKER did not get ready" >&2; exit 1; fi
  sleep 1
done

# The keys the broker has now (ids only), to tell a reusable key file from a stale one.
active="$(admin_curl -f "$BROKER/v1/api-keys")" || { echo "make-keys: GET /v1/api-keys failed: is ADMIN_KEY the broker's admin key?" >&2; exit 1; }

# key SERVICE SETTING REQUEST: OUT_DIR/SERVICE/SETTING holds a key made by REQUEST (POST /v1/api-keys);
# its id is kept beside it in ignore.SETTING.id (AddKeyPerFile skips names starting with "ignore.").
key() {
  dir="$OUT_DIR/$1"; file="$dir/$2"; idfile="$dir/ignore.$2.id"
  mkdir -p "$dir"
  if [ -n "${KEY_OWNER:-}" ]; then chown "$KEY_OWNER" "$dir"; fi
  chmod 0700 "$dir"
  old_id="$(cat "$idfile" 2>/dev/null || true)"
  if [ -n "$old_id" ] && printf '%s' "$active" | grep -q "\"id\":\"$old_id\""; then
    if [ -s "$file" ]; then echo "make-keys: $1/$2 kept ($old_id)"; return; fi
    # The id is live but its key file is gone: revoke it rather than leave a key nobody holds.
    admin_curl -f -o /dev/null -X DELETE "$BROKER/v1/api-keys/$old_id"
  fi
  answer="$(admin_curl -f -X POST -H 'Content-Type: application/json' --data-binary "$3" "$BROKER/v1/api-keys")" \
    || { echo "make-keys: creating $1/$2 failed" >&2; exit 1; }
  new_key="$(printf '%s' "$answer" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')"
  new_id="$(printf '%s' "$answer" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
  if [ -z "$new_key" ] || [ -z "$new_id" ]; then echo "make-keys: unexpected answer for $1/$2" >&2; exit 1; fi
  # Written to a temporary name and renamed, so a service never reads half a key; no trailing newline.
  printf '%s' "$new_key" >"$file.tmp"
  printf '%s' "$new_id" >"$idfile"
  if [ -n "${KEY_OWNER:-}" ]; then chown "$KEY_OWNER" "$file.tmp" "$idfile"; fi
  chmod 0400 "$file.tmp"
  mv -f "$file.tmp" "$file"
  echo "make-keys: $1/$2 made ($new_id)"
}

# OrderService produces to 'orders' as producer group 'order-service' and subscribes its consumer
# group 'order-service' to 'order-rejected' (push). A key has one role, so it gets two.
key order-service HalfMsg__ApiKey \
  '{"name":"order-service","role":"producer","producerGroups":["order-service"],"topics":["orders"]}'
key order-service OrderService__ConsumerApiKey \
  '{"name":"order-service-consumer","role":"consumer","consumerGroups":["order-service"]}'
# InventoryService consumes 'orders' as group 'inventory' (push) and sends plain 'order-rejected' messages.
key inventory-service HalfMsg__ApiKey \
  '{"name":"inventory-service","role":"producer","topics":["order-rejected"]}'
key inventory-service Inventory__ConsumerApiKey \
  '{"name":"inventory-service-consumer","role":"consumer","consumerGroups":["inventory"]}'
# PaymentService sends plain 'payments' messages through its outbox (no producer group: no half messages).
key payment-service HalfMsg__ApiKey \
  '{"name":"payment-service","role":"producer","topics":["payments"]}'
# NotificationConsumer pulls 'orders' and 'payments' as group 'notifications'.
key notification-consumer HalfMsg__ApiKey \
  '{"name":"notification-consumer","role":"consumer","consumerGroups":["notifications"]}'
echo "make-keys: done"
