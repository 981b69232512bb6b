// kafkajs round trip against a weir broker, driven by tests/python/test_clients.py.
//
// Goal: exercise kafkajs' own admin, producer and fetch code paths against weir
// and hand every detail back to Python, which does the checking.
//
// Method: create the topic with the admin client; produce the keyed records
// (value = '<seq>|<key>|<filler>', same shape as tests/python/support.py) with
// acks=-1 in sends of `chunk` records, deriving each record's offset from the
// send result's per-partition baseOffset and kafkajs' own partitioner; then
// read every partition from offset 0 with kafkajs' Fetch (through its Cluster,
// since the consumer API needs consumer groups, which weir does not have yet).
// Writes {produced: [[seq, partition, offset]...], consumed: [[partition,
// offset, key, value]...]} as JSON to the output file.
//
// Usage: node roundtrip.js <broker host:port> <topic> <partitions> <count> <distinctKeys> <out.json>

'use strict'

const fs = require('fs')
const { Kafka, Partitioners, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')

const [broker, topic, partitionsArg, countArg, keysArg, outPath] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const count = Number(countArg)
const distinctKeys = Number(keysArg)
const chunk = 1000
const payloadBytes = 40
const deadlineMs = Date.now() + 100000

function record (seq) {
  const key = `key-${String(seq % distinctKeys).padStart(5, '0')}`
  const head = `${String(seq).padStart(8, '0')}|${key}|`
  let filler = ''
  for (let i = 0; i < payloadBytes - head.length; i++) filler += String.fromCharCode(((seq + i) % 26) + 97)
  return { key, value: head + filler }
}

async function produce (kafka) {
  // Idempotent (InitProducerId, sequence numbers); kafkajs requires one request in flight for it.
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1
  })
  // The same partitioner function the producer uses: it tells which partition each record went to.
  const partitioner = Partitioners.DefaultPartitioner()
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 }))
  await producer.connect()
  const produced = []
  for (let start = 0; start < count; start += chunk) {
    const messages = []
    for (let seq = start; seq < Math.min(start + chunk, count); seq++) messages.push(record(seq))
    const results = await producer.send({ topic, acks: -1, messages })
    const base = new Map()
    for (const r of results) {
      if (r.errorCode !== 0) throw new Error(`produce error ${r.errorCode} on partition ${r.partition}`)
      base.set(r.partition, BigInt(r.baseOffset))
    }
    const next = new Map()
    messages.forEach((message, i) => {
      const partition = partitioner({ topic, partitionMetadata, message: { ...message } })
      if (!base.has(partition)) throw new Error(`no send result for partition ${partition}`)
      const k = next.get(partition) || 0n
      next.set(partition, k + 1n)
      produced.push([start + i, partition, Number(base.get(partition) + k)])
    })
  }
  await producer.disconnect()
  return produced
}

async function consumeAll () {
  const logger = createLogger({ level: logLevel.WARN, logCreator: LoggerConsole })
  const cluster = new Cluster({ logger, socketFactory: defaultSocketFactory(), brokers: [broker], clientId: 'weir-tests-kafkajs', connectionTimeout: 5000 })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  await cluster.refreshMetadata()
  const consumed = []
  for (let partition = 0; partition < partitions; partition++) {
    const [leader] = Object.keys(cluster.findLeaderForPartitions(topic, [partition]))
    const fetcher = await cluster.findBroker({ nodeId: leader })
    let offset = 0n
    for (;;) {
      if (Date.now() > deadlineMs) throw new Error(`fetch deadline passed at partition ${partition} offset ${offset}`)
      const response = await fetcher.fetch({
        isolationLevel: 0,
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 4 << 20,
        topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: 1 << 20 }] }]
      })
      const [p] = response.responses[0].partitions
      if (p.errorCode !== 0) throw new Error(`fetch error ${p.errorCode} on partition ${partition}`)
      for (const m of p.messages) {
        const o = BigInt(m.offset)
        if (o < offset) continue // a batch can start before the requested offset
        consumed.push([partition, Number(o), m.key.toString(), m.value.toString()])
        offset = o + 1n
      }
      if (offset >= BigInt(p.highWatermark)) break
    }
  }
  await cluster.disconnect()
  return consumed
}

async function main () {
  const kafka = new Kafka({ clientId: 'weir-tests-kafkajs', brokers: [broker], logLevel: logLevel.WARN, connectionTimeout: 5000 })
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true, timeout: 10000 })
  if (!created) throw new Error(`createTopics returned ${created}`)
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
  const seen = metadata.topics[0].partitions.length
  if (seen !== partitions) throw new Error(`metadata shows ${seen} partitions, expected ${partitions}`)
  await admin.disconnect()

  const produced = await produce(kafka)
  const consumed = await consumeAll()
  fs.writeFileSync(outPath, JSON.stringify({ produced, consumed }))
}

main().then(() => process.exit(0), err => {
  console.error(`kafkajs roundtrip failed: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
