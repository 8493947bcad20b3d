#!/bin/sh
# The apache/kafka image's environment contract, in short: every KAFKA_<NAME> variable
# (except the JVM's KAFKA_HEAP_OPTS / KAFKA_OPTS) becomes a server property, `_` -> `.`,
# `__` -> `_`, `___` -> `-`, lower-cased; CLUSTER_ID formats the KRaft storage once.
set -eu
: "${CLUSTER_ID:?set CLUSTER_ID (22 characters of base64url)}"
props=/opt/kafka/config/server.properties
env | sort | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=$(printf '%s' "${name#KAFKA_}" | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g' | tr 'A-Z' 'a-z')
  printf '%s=%s\n' "$key" "$value"
done > "$props"
# KAFKA_HEAP_OPTS / KAFKA_OPTS are lists of JVM flags, split on spaces as in kafka-run-class.sh
jvm="${KAFKA_HEAP_OPTS:--Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError"
jvm="$jvm -Djava.awt.headless=true -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties ${KAFKA_OPTS:-}"
# shellcheck disable=SC2086
java $jvm -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$props"
# shellcheck disable=SC2086
exec java $jvm -cp '/opt/kafka/libs/*' kafka.Kafka "$props"
