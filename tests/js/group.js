// kafkajs consumer group against a weir broker, driven by tests/python/test_groups.py.
//
// Goal: exercise kafkajs' own group code (FindCoordinator, JoinGroup/SyncGroup
// with its RoundRobinAssigner, Heartbeat, OffsetFetch/OffsetCommit through
// autoCommit, DescribeGroups, LeaveGroup on disconnect) and hand every detail
// back to Python, which does the checking.
//
// Method: one consumer joins <groupId>, subscribes to <topic> from the
// beginning and runs eachMessage until it has seen <expected> records, then
// keeps running one more second (so extras or duplicates are seen too),
// describes its group while still a member, disconnects (which commits what is
// resolved and leaves the group) and reads the group's committed offsets with
// the admin client. Writes {consumed: [[partition, offset, key, value]...],
// joins: [{memberId, leaderId, isLeader, groupProtocol, assignment}...],
// described: {state, protocol, protocolType, members: [{memberId, clientId,
// clientHost, assignment}]}, committed: [{partition, offset}...]} as JSON.
//
// Usage: node group.js <broker host:port> <topic> <groupId> <expected> <out.json>

'use strict'

const fs = require('fs')
const { Kafka, AssignerProtocol, logLevel } = require('kafkajs')

const [broker, topic, groupId, expectedArg, outPath] = process.argv.slice(2)
const expected = Number(expectedArg)
const clientId = 'weir-tests-kafkajs-group'
const deadlineMs = Date.now() + 75000

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const kafka = new Kafka({ clientId, brokers: [broker], logLevel: logLevel.WARN, connectionTimeout: 5000 })
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 20000 })
  const joins = []
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joins.push({
      memberId: payload.memberId,
      leaderId: payload.leaderId,
      isLeader: payload.isLeader,
      groupProtocol: payload.groupProtocol,
      assignment: payload.memberAssignment
    })
  })
  let crashed = null
  consumer.on(consumer.events.CRASH, ({ payload }) => { crashed = payload.error })

  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const consumed = []
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      consumed.push([partition, Number(message.offset), message.key.toString(), message.value.toString()])
    }
  })
  while (consumed.length < expected) {
    if (crashed) throw crashed
    if (Date.now() > deadlineMs) throw new Error(`consumed ${consumed.length} of ${expected} records before the deadline`)
    await sleep(50)
  }
  await sleep(1000)

  const group = await consumer.describeGroup()
  const described = {
    state: group.state,
    protocol: group.protocol,
    protocolType: group.protocolType,
    members: group.members.map(m => ({
      memberId: m.memberId,
      clientId: m.clientId,
      clientHost: m.clientHost,
      assignment: (AssignerProtocol.MemberAssignment.decode(m.memberAssignment) || {}).assignment || {}
    }))
  }
  await consumer.disconnect()

  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  await admin.disconnect()
  const committed = offsets[0].partitions.map(p => ({ partition: p.partition, offset: Number(p.offset) }))

  fs.writeFileSync(outPath, JSON.stringify({ consumed, joins, described, committed }))
}

main().then(() => process.exit(0), err => {
  console.error(`kafkajs group failed: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
