import { z } from 'zod'

/**
 * The tunables of tandem-server: the sizes, intervals and timeouts inside
 * the node that an operator rarely changes but may need to, in one schema
 * (each with its unit, default and trade-off). They are set with
 * `--tune NAME=VALUE[,NAME=VALUE...]` (env TANDEM_TUNE, config file key
 * `tune`, an object or the same string); the ones most operators need are
 * flags of their own in config.ts. The server parses them once and passes
 * the values down to the objects that use them, as constructor options.
 */

export interface TuningDoc {
  /** ms, bytes, entries, keys, writes... */
  unit: string
  /** What it does, and what more or less of it costs. */
  description: string
}

const doc = (d: TuningDoc) => d as TuningDoc & Record<string, unknown>
const count = z.coerce.number().int().positive()

export const tuningSchema = z
  .object({
    periodicSyncMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          'With --sync periodic, how often the data is fsynced: at most this much of acknowledged writes is lost on power failure. Shorter loses less and costs more fsyncs.',
      }),
    ),
    replHighWaterBytes: count.default(4 * 1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Unsent bytes per downstream before its feed stops reading the log (and the count --repl-timeout watches). Larger rides out longer stalls of a replica and holds more memory per slow one.',
      }),
    ),
    replHeartbeatMs: count.default(500).meta(
      doc({
        unit: 'ms',
        description:
          'How often an upstream heartbeats each streaming downstream (its head seq, for lag) and checks it against --repl-timeout. Shorter reports lag sooner and sends more frames.',
      }),
    ),
    replBatchEntries: count.default(2000).meta(
      doc({
        unit: 'entries',
        description:
          'Most log entries in one replication frame. Larger frames cost less per entry and make a replica apply in bigger, later steps.',
      }),
    ),
    replBatchBytes: count.default(1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          "Most bytes of entries in one replication frame (at least one entry is sent). Must stay under the downstream's frame limit (twice --max-frame-bytes).",
      }),
    ),
    snapshotChunkBytes: count.default(256 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Bytes of records in one full-sync frame. Larger costs less per record and holds more memory per full sync in flight.',
      }),
    ),
    replAckIntervalMs: count.default(250).meta(
      doc({
        unit: 'ms',
        description:
          'How often a replica acks the seq it holds (or pings during a full sync). Shorter makes lag figures and --min-replicas fresher; keep it well under --max-lag and --repl-timeout.',
      }),
    ),
    replHandshakeTimeoutMs: count.default(5000).meta(
      doc({
        unit: 'ms',
        description:
          "How long an upstream has to accept a replica's socket, and then to prove it holds the token, before the replica gives up and dials again. Longer suits slow links; shorter finds a dead upstream sooner.",
      }),
    ),
    replMinBackoffMs: count.default(50).meta(
      doc({
        unit: 'ms',
        description:
          'First wait before a replica dials its upstream again after losing it; it doubles on each failure up to replMaxBackoffMs. Shorter reconnects sooner and dials a dead upstream more often.',
      }),
    ),
    replMaxBackoffMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          "Longest wait between a replica's dials of an upstream it cannot reach (also the wait after a refusal). Shorter catches up sooner after an outage and dials more while it lasts.",
      }),
    ),
    replMaxQueuedApply: count.default(16).meta(
      doc({
        unit: 'frames',
        description:
          "Frames of entries (each at most replBatchEntries / replBatchBytes) a replica lets wait for its group committer before it stops reading its upstream's socket, so TCP slows the upstream. More keeps the committer busier and holds more in memory.",
      }),
    ),
    defaultWriteTimeoutMs: count.default(5000).meta(
      doc({
        unit: 'ms',
        description:
          'How long a write with w>0 waits for its acks when the request gives no timeoutMs (then TIMEOUT; the write is applied). Longer rides out slower replicas; shorter tells a client sooner.',
      }),
    ),
    mgetSliceKeys: count.default(1000).meta(
      doc({
        unit: 'keys',
        description:
          'Most keys an mget reads from LevelDB at once (fewer when values are large, to bound the reply). Larger reads are cheaper per key and hold the event loop longer.',
      }),
    ),
    readBatchKeys: count.default(1000).meta(
      doc({
        unit: 'keys',
        description:
          'Most gets that arrive together the store coalesces into one LevelDB read. Larger is cheaper per get and makes the first get of a burst wait for the rest.',
      }),
    ),
    snapshotPageRecords: count.default(1000).meta(
      doc({
        unit: 'records',
        description:
          'Records read from LevelDB at once while streaming a snapshot (full sync, backup). Larger is cheaper per record and holds more in memory.',
      }),
    ),
    // LevelDB takes it as a 32-bit size.
    blockCacheBytes: count
      .max(2 ** 32 - 1)
      .default(8 * 1024 * 1024)
      .meta(
        doc({
          unit: 'bytes',
          description:
            "LevelDB's cache of uncompressed table blocks, which gets and the reads of writes that need a key's record are answered from before the OS page cache (a read syscall and decompression each). Data read often that fits in it is read several tenths of a microsecond cheaper per get; each byte of it may be resident memory.",
        }),
      ),
    // LevelDB keeps it between 64 KiB and 1 GiB.
    writeBufferBytes: count
      .min(64 * 1024)
      .max(1024 * 1024 * 1024)
      .default(16 * 1024 * 1024)
      .meta(
        doc({
          unit: 'bytes',
          description:
            "LevelDB's memtable: how much written data it holds in memory (and in its write-ahead log) before writing it out as a table. Larger writes fewer, larger tables, so a burst of writes (a peer catching up, a load at saturation) costs less compaction CPU and meets fewer write stalls; up to twice it is resident memory (the memtable and the one being written out), and a restart replays up to this much log.",
        }),
      ),
    tableCompression: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(1)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "1 compresses LevelDB's table blocks (snappy) as it writes them out of the memtable and merges them; 0 stores them as they are. LevelDB tries every block and keeps the compressed form only when it saves an eighth, so values that do not compress (random bytes, already compressed data) pay for the try on every write-out and merge (a full sync's included) for no disk saved; 0 drops that work on LevelDB's background thread, and stores values that would compress at their full size. Applies to the tables written from then on; tables of either kind are read.",
        }),
      ),
    pipelinedCommit: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(1)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "1 pipelines group commits on a single master with --sync always: the next group is read and built while the group before it is written and fsynced, taking every write that arrives until that write is done, and goes to LevelDB right after it (status commit.overlapped counts such groups). The disk and the event loop then work side by side instead of in turn, at the cost of more event-loop turns a write; it pays where the fsync is long next to a group's build. 0 forms the next group only once the write before it is done. No effect in other modes.",
        }),
      ),
    handOverFirst: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(0)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "With pipelined commits (pipelinedCommit, multiPipelinedCommit): 1 hands the group built during a write to LevelDB as soon as that write is done and its counts are taken (the key count, digest and largest value the next batch builds on), and does the written group's bookkeeping (the presence cache, the log's tail, commit listeners) and answers its writes after that hand-over; 0 does the bookkeeping first, and the disk idles meanwhile (about 0.1 ms a group). Answers come in the same order either way. 1 keeps each written group's objects alive past young-generation collections (a group's records, batch and maps are promoted and collected by mark-compacts), which costs more than the idle disk saves.",
        }),
      ),
    multiPipelinedCommit: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(1)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "1 pipelines group commits on a multi-master node with --sync always, as pipelinedCommit does on a single master: client writes and peers' entries are read, resolved against what the group being written leaves, and built into the next group while that one is written and fsynced. 0 builds the next group only once the write before it is done. No effect in other modes.",
        }),
      ),
    presenceKeys: z.coerce
      .number()
      .int()
      .nonnegative()
      .default(200_000)
      .meta(
        doc({
          unit: 'keys',
          description:
            "How many recently written keys the store remembers as existing or not, so that a write of one needs no LevelDB read to keep the key count (status keys). About 50 bytes of memory each beside the key's own bytes, and at most 64 bytes of key a key on average (longer keys: fewer remembered); 0 reads every written key once per group commit.",
        }),
      ),
    lwwHeadKeys: z.coerce
      .number()
      .int()
      .nonnegative()
      .default(262_144)
      .meta(
        doc({
          unit: 'keys',
          description:
            "On a multi-master node under --conflict lww: how many recently written keys the store keeps the version (HLC, counter, origin), tombstone flag and convergence-digest term of, so that the next write of one resolves without reading its record from LevelDB. About 50 bytes of memory each beside the key's own bytes (at most 64 bytes of key a key on average); 0 reads every written key's record once per group commit.",
        }),
      ),
    readCacheKeys: z.coerce
      .number()
      .int()
      .nonnegative()
      .default(100_000)
      .meta(
        doc({
          unit: 'keys',
          description:
            'How many recently read keys the node keeps the values of in memory, so that a local read of one (a get, a RESP GET) is answered without a LevelDB lookup. Only keys of ASCII characters whose value has no TTL are kept; a write drops its keys before LevelDB takes it, and nothing is kept from a read made while a write is in flight, so a read never answers older than LevelDB would. More keeps more of a working set (see readCacheBytes); 0 keeps none.',
        }),
      ),
    readCacheBytes: count.default(32 * 1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'The most the read cache holds (readCacheKeys): keys and values counted at their length (a string value at one byte a character when each is below U+0100, else two) plus 64 bytes a key, and the table that finds them (about 64 to 96 bytes a key it has room for; it grows only while it fits); past it, or past readCacheKeys, the oldest kept go first.',
      }),
    ),
    readCacheWrites: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(0)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "1: the read cache (readCacheKeys) also keeps the values a write leaves, once LevelDB has applied it and when no other write was in flight meanwhile, so that the first read of a key just written needs no LevelDB lookup; only a local put's values with no TTL are kept, and only where there is room (a write never pushes out what is kept). Values are copied into chunks of the cache's own, each counted whole while any value in it is kept. It costs a put about 0.5 us in-process (its key looked up in the cache, its value copied) and about 2 us of server CPU at 50x16 in tandem-bench (its reads gained nothing there), so it is off by default; turn it on for loads that read keys soon after writing them. 0: only what reads read is kept.",
        }),
      ),
    noSpaceRetryMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          'While writes fail for a full disk, how often the node looks for free space and tries to recover. Shorter resumes writes sooner and costs a statfs each time.',
      }),
    ),
    noSpaceHeadroomBytes: count.default(1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          "Free bytes the data dir's file system must have before a node that ran out of space reopens LevelDB. More avoids failing again at once; less resumes sooner.",
      }),
    ),
    expiryTickMs: count.default(100).meta(
      doc({
        unit: 'ms',
        description:
          'How often the master looks for keys whose TTL ran out and deletes them (reads treat them as missing meanwhile). Shorter frees them sooner and wakes the node more often.',
      }),
    ),
    expiryMaxPerTick: count.default(200).meta(
      doc({
        unit: 'keys',
        description:
          'Most expired keys deleted in one write (one log entry) per tick. More catches up faster after a mass expiry; fewer keeps each write small.',
      }),
    ),
    watchHighWaterBytes: count.default(1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Unsent bytes per watch socket before its feed stops reading the log until they drain. Larger rides out slower watchers and holds more memory per watch.',
      }),
    ),
    watchBatchEntries: count.default(1000).meta(
      doc({
        unit: 'entries',
        description:
          'Most log entries a watch scans for one frame of events. Larger is cheaper per event and holds the event loop longer per step.',
      }),
    ),
    watchBatchBytes: count.default(256 * 1024).meta(
      doc({
        unit: 'bytes',
        description: 'Most bytes of events in one watch frame. Larger is cheaper per event and makes frames bigger.',
      }),
    ),
    watchProgressMs: count.default(500).meta(
      doc({
        unit: 'ms',
        description:
          'How often an idle watch says where it is (and that it is alive). Shorter lets a watcher resume from a later seq and notice a dead node sooner, and sends more frames.',
      }),
    ),
    watchCatchUpProgressMs: count.default(100).meta(
      doc({
        unit: 'ms',
        description:
          'A watch that catches up says where it is at once, unless it said so this recently. Shorter tells the watcher sooner and sends more frames under steady writes.',
      }),
    ),
    backupHighWaterBytes: count.default(4 * 1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Unsent bytes before a backup (tandem snapshot save) stops reading its snapshot until they drain. Larger rides out a slower reader and holds more memory per backup.',
      }),
    ),
    backupChunkBytes: count.default(256 * 1024).meta(
      doc({
        unit: 'bytes',
        description: 'Bytes of records in one backup frame. Larger costs less per record and holds more per frame.',
      }),
    ),
    maxBackups: count.default(4).meta(
      doc({
        unit: 'backups',
        description:
          'Backups streamed at once; another is refused (BUSY, retry later). Each holds a LevelDB snapshot, which keeps old versions from compaction: more costs disk.',
      }),
    ),
    peerMinBackoffMs: count.default(50).meta(
      doc({
        unit: 'ms',
        description:
          'Multi-master: first wait before dialling a peer again after losing it; it doubles up to peerMaxBackoffMs. Shorter reconnects sooner and dials a dead peer more.',
      }),
    ),
    peerMaxBackoffMs: count.default(100).meta(
      doc({
        unit: 'ms',
        description:
          'Multi-master: longest wait between attempts to reach a peer that is down or cut off (one TCP connect each, ten a second at most). Short, so that a healed partition is seen within a tenth of a second: catching up starts that much sooner.',
      }),
    ),
    peerRefusedBackoffMs: count.default(5000).meta(
      doc({
        unit: 'ms',
        description:
          'Multi-master: wait before asking again a peer that refused this node (auth, an incompatible policy): it will say the same. Shorter notices a fixed peer sooner.',
      }),
    ),
    peerClockPauseMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: how long a link paused for a peer's clock running ahead (past --max-clock-offset) waits before it asks again.",
      }),
    ),
    peerClockProbeMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: how often a link measures its peer's clock offset. Shorter keeps the offset (and CLOCKSKEW) fresher and sends more frames.",
      }),
    ),
    peerMaxQueuedApply: count.default(16).meta(
      doc({
        unit: 'frames',
        description:
          "Multi-master: frames of a peer's entries handed to the group committer and not yet durable (frames read together count once) before the link stops reading that peer's socket; it reads again at half of it. They wait as the bytes that came (read when their group is built), so more holds more of them in memory, at most this many frames. A pause costs lag: frames the peer sends meanwhile are read only once a group is durable, after the next group has gone to the disk without them, so each waits a whole group write more; too few pauses the link at every slow write under a steady load (a frame waits in one group being written and another being built).",
      }),
    ),
    peerDirectSilenceMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: a peer heard from within this long (peer feeds heartbeat every replHeartbeatMs) counts as the way this node gets that peer's own writes: it is named, with the run of its process, in this node's hello and acks, and this node's other peers stop forwarding its writes here while they serve that run too; past it they forward them again (their links to this node dial again and resume from what it holds). Shorter falls back sooner on a dead or stalled peer; too short makes links to a busy peer fall back and resume needlessly.",
      }),
    ),
    peerVvFrameMs: count.default(100).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: when everything new a feed has for a peer is skipped (the peer pulls those writes from their origin directly), the feed tells it what this node now holds in an entries frame with no entries, at most once in this long (the last one goes out when it ends; heartbeats, every replHeartbeatMs, say it too). Shorter keeps the peer's view of this node (what it tells a restarted origin, peersHold) fresher at a frame each.",
      }),
    ),
    peerFramesInFlight: count.default(64).meta(
      doc({
        unit: 'frames',
        description:
          "Multi-master: entries frames a feed leaves unacknowledged by its peer before it holds what commits next for one frame sent when the next ack comes (a full batch goes at once). Each frame costs both nodes alike whatever it holds, so fewer makes fewer, fuller frames under load, and more sends sooner: a frame is acknowledged once the peer's commit of it is durable, so at 1 every entry waits for the peer's commit of the frame before it. The default holds frames back only from a peer that has fallen far behind; 1 trades peer lag for throughput (see BENCHMARKS.md). An idle link's first frame is never held.",
      }),
    ),
    peerHandshakeTimeoutMs: count.default(5000).meta(
      doc({
        unit: 'ms',
        description:
          'Multi-master: a peer that accepts the connection but does not prove itself in this long is dropped and dialled again. Longer suits slow links.',
      }),
    ),
    clientKeepaliveMs: count.default(500).meta(
      doc({
        unit: 'ms',
        description:
          "A client connection that owes replies, is paused for backpressure or is receiving a frame, and has sent nothing for this long, gets a WebSocket ping (clients take a silent node as gone: the SDK's livenessTimeoutMs). Keep it well under the clients' liveness timeout; shorter sends more pings.",
      }),
    ),
    clientFlushPerTurn: z.coerce
      .number()
      .int()
      .min(0)
      .max(1)
      .default(1)
      .meta(
        doc({
          unit: '(1 on, 0 off)',
          description:
            "1: the replies of every WebSocket client connection wait for the end of the event loop's turn (after every socket ready in it was read) and are written then, one write a connection. 0: a connection's replies are written as soon as the read (or the group commit) that made them has run. Writing between reads lets each client woken by a reply take the node's core in the middle of its turn: at 50 connections with one request in flight, 1 saves about 2 us of server CPU a request on 2 cores. A reply waits at most for the rest of the turn's input.",
        }),
      ),
    clientCloseGraceMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          'After the node closes a client connection (WebSocket API, watch or RESP), how long a client that does not read its close frame or last replies keeps the socket before it is dropped; likewise a WebSocket client that half-closed its socket (a FIN, no close frame) and reads nothing of what the node still has to send. Shorter frees sockets sooner; too short cuts off the last replies of a slow reader.',
      }),
    ),
    peerStartupGraceMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          'Multi-master: how long a node that reaches none of its peers after start waits before it takes writes alone (UNAVAILABLE meanwhile). Longer makes a restored or clock-skewed node likelier to hear a peer first; shorter takes writes sooner after a start.',
      }),
    ),
    peerClockOffsetFreshMs: count.default(10_000).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: a peer's measured clock offset older than this does not count towards CLOCKSKEW. Keep it well above peerClockProbeMs.",
      }),
    ),
    siblingTrimQueue: count.default(10_000).meta(
      doc({
        unit: 'keys',
        description:
          'Multi-master, vclock: keys over --max-siblings waiting for their trim write at once; more wait for the next write that passes the cap. Larger trims faster after a burst of conflicts and holds more keys in memory.',
      }),
    ),
    drainTimeoutMs: count.default(10_000).meta(
      doc({
        unit: 'ms',
        description:
          'On shutdown (SIGTERM), how long the node waits for requests in flight to be answered before it closes the sockets anyway. Longer loses fewer answers; shorter stops sooner.',
      }),
    ),
    linkCloseGraceMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          "After a node closes a replica's or a peer's link, how long the dialler has to answer the close frame before its socket is dropped. Shorter frees sockets sooner; too short cuts off the close reason a slow dialler would log.",
      }),
    ),
    linkInboxDepth: count.default(64).meta(
      doc({
        unit: 'messages',
        description:
          'Messages of a replication or peer link waiting for their turn to be handled before the node stops reading that socket (it reads again at a quarter of this). More absorbs bursts and holds more in memory per link.',
      }),
    ),
    frameCloseGraceMs: count.default(200).meta(
      doc({
        unit: 'ms',
        description:
          'How long a socket closed for a frame too slow (--frame-timeout) or past --max-partial-frame-bytes may take to send its close frame before it is dropped. Longer lets clients read the reason; shorter frees the memory sooner.',
      }),
    ),
    tombstoneCollectMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          "Multi-master: how often the node looks for causally stable tombstones to collect. Shorter frees deleted keys' space sooner and reads the tombstone index more often.",
      }),
    ),
    tombstonePageKeys: count.default(1000).meta(
      doc({
        unit: 'tombstones',
        description:
          'Multi-master: most tombstones read from the index in one collection pass (a round goes on from where the last pass stopped). Larger catches up faster on a backlog and holds the event loop longer per pass.',
      }),
    ),
    respSwitchCheckMs: count.default(100).meta(
      doc({
        unit: 'ms',
        description:
          'RESP: while anyone is subscribed, how often the node looks up the master for the Sentinel event +switch-master. Shorter tells subscribers sooner and wakes the node more often.',
      }),
    ),
    respProbeTimeoutMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          'RESP: how long REPLICAOF waits for an address it does not know to answer INFO server (it is then taken as a tandem address). Longer suits slow links; shorter answers REPLICAOF sooner.',
      }),
    ),
    respProbeMaxReplyBytes: count.default(64 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'RESP: most bytes REPLICAOF reads of the INFO server reply of an address it probes (a tandem or Redis reply is well under this). Bounds what a wrong address can make the node hold.',
      }),
    ),
    respMaxAttempts: count.default(16).meta(
      doc({
        unit: 'attempts',
        description:
          'RESP: how many times a read-then-write command (SET with GET or KEEPTTL, EXPIRE with NX/XX/GT/LT, PERSIST) reads again when another write beats it to the key, before it answers BUSY. More rides out hotter keys and holds the connection longer.',
      }),
    ),
    consoleTickMs: count.default(1000).meta(
      doc({
        unit: 'ms',
        description:
          "Web console: how often the console's watcher builds a view of the group and pushes it to open consoles, and how often it asks the nodes in view to push their reports. Shorter makes the view fresher and costs every node in view a report per tick.",
      }),
    ),
    consolePollTimeoutMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          'Web console: a node that has sent no report (pushed, or answered to a poll) in this long is drawn unreachable and its report stream is dropped. Longer suits slow links; shorter shows a dead node sooner.',
      }),
    ),
    consolePollWaitMs: count.default(600).meta(
      doc({
        unit: 'ms',
        description:
          'Web console: how long a tick waits for the reports it asked for before it pushes what it has (late answers count at the next tick). Keep it under consoleTickMs.',
      }),
    ),
    consoleMaxNodes: count.default(64).meta(
      doc({
        unit: 'nodes',
        description:
          'Web console: most nodes the watcher follows; more are left out of the view (it says so). More draws larger groups and polls more nodes per tick.',
      }),
    ),
    consoleForgetMs: count.default(5 * 60_000).meta(
      doc({
        unit: 'ms',
        description:
          'Web console: a node that no report has named, and that has not answered, for this long is dropped from the view. Longer keeps a dead node visible longer.',
      }),
    ),
    consoleLagSamples: count.default(300).meta(
      doc({
        unit: 'samples',
        description:
          'Web console: lag samples kept per link (one a tick) for the lag charts. More draws a longer history and holds more memory and a larger snapshot per console.',
      }),
    ),
    consoleMaxEpochs: count.default(50).meta(
      doc({
        unit: 'epochs',
        description:
          "Web console: most epochs of the group's history the view carries. More shows older fail-overs and makes each view larger.",
      }),
    ),
    consoleRateWindowMs: count.default(500).meta(
      doc({
        unit: 'ms',
        description:
          "Web console: writes/s and reads/s are computed over at least this much of a node's time. Longer gives steadier figures that follow changes later.",
      }),
    ),
    consoleMaxStreams: count.default(64).meta(
      doc({
        unit: 'streams',
        description:
          "Web console: most console streams (/ui/api/events) open at once, and as many streams pushing this node's report to other nodes' watchers (/ui/api/reports); more get 503 BUSY. Each costs a socket and the bytes of a view (or a report) per tick.",
      }),
    ),
    consoleStreamBacklogBytes: count.default(1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Web console: a stream whose client has this much unread is closed (it reconnects and gets a snapshot). Larger rides out slower browsers and holds more memory per stream.',
      }),
    ),
    consoleMaxReportBytes: count.default(4 * 1024 * 1024).meta(
      doc({
        unit: 'bytes',
        description:
          'Web console: the largest report accepted from another node (a report is a status and a few counters). Bounds what a wrong address can make the node hold.',
      }),
    ),
    consoleRollbackRefreshMs: count.default(10_000).meta(
      doc({
        unit: 'ms',
        description:
          'Web console: how often, while a console watches, the node lists its rollback folder for the report. Shorter shows new rollback files sooner and costs a readdir each time.',
      }),
    ),
    consoleMaxRollbackFiles: count.default(20).meta(
      doc({
        unit: 'files',
        description:
          "Web console: most rollback file names (the newest) a node's report lists. More shows older rollbacks and makes each report larger.",
      }),
    ),
    consoleDiskMaxAgeMs: count.default(10_000).meta(
      doc({
        unit: 'ms',
        description:
          'Web console: how old a data-dir size a console report may show before a tick starts a new walk of the data dir (status and /metrics use diskRefreshMs). Shorter is fresher and costs a walk on every node in view more often.',
      }),
    ),
    diskRefreshMs: count.default(2000).meta(
      doc({
        unit: 'ms',
        description:
          "How old the data dir's size (status diskBytes, /metrics) may be before a read starts a new walk of the dir (a readdir per folder and a stat per file). Shorter is fresher and walks more often.",
      }),
    ),
    diskMaxWalkedFiles: count.default(100_000).meta(
      doc({
        unit: 'files',
        description:
          'Most files one walk of the data dir stats (the size then counts only those). Bounds the walk of a data dir someone filled with other files.',
      }),
    ),
  })
  .strict()

export type Tuning = z.infer<typeof tuningSchema>

/** Every tunable at its default. */
export const DEFAULT_TUNING: Tuning = Object.freeze(tuningSchema.parse({}))

export const TUNING_NAMES = Object.keys(tuningSchema.shape) as (keyof Tuning)[]

/**
 * `NAME=VALUE[,NAME=VALUE...]` (from --tune, given once or more, or
 * TANDEM_TUNE) into an object for tuningSchema; a config file's object
 * passes as it is. Throws with the bad part named.
 */
export function tuneInput(value: unknown): Record<string, unknown> {
  if (value === undefined) return {}
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','))
  const out: Record<string, unknown> = {}
  for (const part of parts.map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z]+)=(.+)$/.exec(part)
    if (!m) throw new Error(`expected NAME=VALUE, got ${JSON.stringify(part)}`)
    out[m[1]] = m[2]
  }
  return out
}

/** The README's table of tunables (markdown), from the schema. */
export function tuningMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|')
  const rows = TUNING_NAMES.map((name) => {
    const meta = tuningSchema.shape[name].meta() as TuningDoc | undefined
    if (!meta) throw new Error(`tunable ${name} has no description`)
    return `| \`${name}\` | ${DEFAULT_TUNING[name]} ${meta.unit} | ${cell(meta.description)} |`
  })
  return ['| tunable | default | meaning |', '|---|---|---|', ...rows].join('\n')
}
