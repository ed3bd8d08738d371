#!/usr/bin/env bash
# One broker+controller of the compose cluster, secured (docs/SECURITY.md): SASL_SSL (SCRAM) for
# clients and between brokers, TLS with client certificates between controllers, the KRaft
# StandardAuthorizer denying whatever no ACL allows. The admin SCRAM credential is written into
# the metadata when the storage is formatted (its password: the kafka-admin-password secret).
# Certificates come from the `certs` init service (hub tls) in /certs.
set -euo pipefail
host="kafka-${KAFKA_NODE_ID}"
admin_password="$(tr -d '\r\n' < /run/secrets/kafka-admin-password)"
keystore_password="$(tr -d '\r\n' < "/certs/${host}.p12.password")"
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"${admin_password}\";"
umask 077
props=/tmp/server.properties
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
listeners=SASL_SSL://:9092,CONTROLLER://:9093
advertised.listeners=SASL_SSL://${host}:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${jaas}
ssl.keystore.type=PKCS12
ssl.keystore.location=/certs/${host}.p12
ssl.keystore.password=${keystore_password}
ssl.key.password=${keystore_password}
ssl.truststore.type=PEM
ssl.truststore.location=/certs/ca.pem
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=kafka-1;User:CN=kafka-2;User:CN=kafka-3
log.dirs=/var/lib/kafka/data
num.partitions=12
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
PROPS
# The healthcheck's client: the admin, verifying this broker's certificate by its host name.
cat > /tmp/client.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=${jaas}
ssl.truststore.type=PEM
ssl.truststore.location=/certs/ca.pem
PROPS
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "${CLUSTER_ID}" -c "$props" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_password}]"
exec /opt/kafka/bin/kafka-server-start.sh "$props"
