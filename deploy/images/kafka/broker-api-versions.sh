#!/bin/sh
# As in the Kafka distribution: the compose healthcheck runs this against localhost:9092.
# A short-lived JVM: C1 only and the serial collector start it fastest.
exec java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp '/opt/kafka/libs/*' kafka.admin.BrokerApiVersionsCommand "$@"
