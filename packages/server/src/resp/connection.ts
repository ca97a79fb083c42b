import type { Socket } from 'node:net'
import type { ErrorCode } from '@tandem/protocol'
import type { EntryOp } from '../storage/log-entry.js'
import { RunRefused } from '../storage/run-refused.js'
import { guarded, handlerThrew } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import type { LatencyHistogram } from '../util/metrics.js'
import {
  arityFits,
  type CommandContext,
  type CommandKind,
  type CommandSpec,
  checkGetKey,
  commandNamed,
  GET_SPEC,
  plainSetOp,
  type RespHost,
  type RespSession,
  SET_SPEC,
} from './commands.js'
import { errorReply, OK, PushReply, type Reply, RespWriter } from './encoder.js'
import { replyForError } from './errors.js'
import type { Glob } from './glob.js'
import { type RespLimits, RespParser, RespProtocolError, UNAUTHENTICATED_LIMITS } from './parser.js'

interface RespConnectionHooks {
  /** `count` commands of `op` received (one when not given). */
  onCommand(op: string, count?: number): void
  /** Seconds from reading a command to sending its reply, by tandem op. */
  latency?: LatencyHistogram
  onError(code: ErrorCode): void
  onProtocolError(): void
  onClosed(connection: RespConnection): void
  logger: Logger
}

/**
 * Replies owed to the client, in the order the commands came: one
 * command's, or a run's (`count` GETs or plain SETs dispatched one after
 * another), which are answered together and so need no object each.
 */
interface Slot {
  /** The reply: of each of `count` commands when `replies` is null (a run of SETs all OK). */
  reply: Reply | undefined
  done: boolean
  /** Commands answered here: 1, or a run's length. */
  count: number
  /**
   * A run's replies, at `from` onwards: a GET's value (undefined when the
   * key is missing) or error reply, a SET's OK or error reply. The array
   * may hold other connections' answers outside this run's range.
   */
  replies: (Reply | undefined)[] | null
  from: number
  /** The op the replies are timed under, and when the commands' bytes were read; none for pushes. */
  op: string | undefined
  at: number
}

/** GETs dispatched one after another in one pass over the input, read together when the run ends. */
interface GetRun {
  /** The keys' argument bytes (GetBatch.read). */
  keys: Buffer[]
  slot: Slot
}

/**
 * Plain SETs dispatched one after another in one pass over the input,
 * submitted together when the run ends: each is a write of its own, and
 * the run one item in the group committer (node.putEach).
 */
interface SetRun {
  ops: EntryOp[]
  slot: Slot
}

/** A slot of one reply, already known (a push, an error) or owed by one command (op). */
function oneSlot(reply: Reply | undefined, op?: string, at = 0): Slot {
  return { reply, done: reply !== undefined, count: 1, replies: null, from: 0, op, at }
}

/**
 * One Redis-protocol client socket.
 *
 * Pipelining: every command in a read is parsed and dispatched in the same
 * turn, and the replies ready by the end of it (or of the turn their
 * promises settle in) leave in one socket write. Replies go out in command
 * order whatever order they complete in (`slots`).
 *
 * Ordering: a read never runs while a write sent before it on this
 * connection is unsettled, and a write never while a read before it is, so
 * a pipelined `SET k v; GET k` reads its own write and `GET k; SET k v`
 * reads the old value, as in Redis. Reads run together and so do writes
 * (they share a group commit; a run of plain SETs is submitted as one
 * item, each still its own write); the GETs of every connection in one turn
 * of the event loop are one batch read (GetBatch: one synchronous pass,
 * or one LevelDB getMany, not a read and a promise per GET). A barrier
 * command (WAIT, REPLICAOF, FAILOVER) waits for everything before it and
 * holds everything after it.
 *
 * Backpressure, with the WebSocket API's limits: a command is dispatched
 * only while fewer than --max-in-flight replies are owed and the socket
 * holds at most --max-reply-buffer-bytes unsent; otherwise the socket is
 * paused and the parser keeps what it has read (one read, plus a partial
 * command, see RespParser), so TCP pushes back on the client.
 */
export class RespConnection implements RespSession {
  resp3 = false
  name: string | null = null
  authenticated: boolean
  readonly channels = new Set<string>()
  readonly patterns = new Map<string, Glob>()
  readonly createdAt: number
  readonly remoteAddress: string
  private readonly parser: RespParser
  private readonly writer = new RespWriter()
  private slots: Slot[] = []
  private slotHead = 0
  /** Replies the slots from slotHead on stand for (what --max-in-flight bounds). */
  private owed = 0
  private unsettledReads = 0
  private unsettledWrites = 0
  private barrier = false
  /** The GETs of the current pass not yet read (see GetRun). */
  private getRun: GetRun | null = null
  /** The plain SETs of the current pass not yet submitted (see SetRun). */
  private setRun: SetRun | null = null
  /** A parsed command waiting for its turn (ordering). */
  private waiting: Buffer[] | null = null
  private paused = false
  /** No more commands are read: QUIT, a protocol error, or shutdown. */
  private closing = false
  private inputEnded = false
  private closed = false
  private flushScheduled = false
  private readonly ctx: CommandContext
  private readonly idleWaiters: (() => void)[] = []
  /** The clock's now() at the last read from the socket (one clock read per read, not per command). */
  private readAt = 0
  /** Closes the connection if it has not authenticated by --auth-timeout. */
  private authTimer: NodeJS.Timeout | null = null
  /** Closes the connection if the command being received is not whole by --frame-timeout. */
  private commandTimer: NodeJS.Timeout | null = null
  /** The parser's bytes as last added to the front end's total (host.holdInput). */
  private countedInput = 0
  /** GETs and SETs dispatched in this pump, counted (hooks.onCommand) once at its end. */
  private gets = 0
  private sets = 0

  constructor(
    private readonly socket: Socket,
    readonly id: number,
    private readonly host: RespHost,
    private readonly hooks: RespConnectionHooks,
  ) {
    this.createdAt = host.node.clock.wall()
    this.authenticated = host.config.authToken === undefined
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`
    this.parser = new RespParser(this.limits())
    this.ctx = { host, session: this }
    socket.setNoDelay(true)
    // Commands are parsed and run from inside these listeners: a throw ends this connection, not the process.
    const drop = () => this.dropAfterThrow()
    socket.on(
      'data',
      guarded('resp', hooks.logger, drop, (chunk: Buffer) => this.onData(chunk)),
    )
    socket.on(
      'drain',
      guarded('resp', hooks.logger, drop, () => this.pump()),
    )
    socket.on(
      'end',
      guarded('resp', hooks.logger, drop, () => this.onEnd()),
    )
    socket.on('close', () => this.onSocketClosed())
    socket.on('error', () => {})
    this.armAuthTimeout()
  }

  /**
   * With --auth-token, a connection that has not authenticated within
   * --auth-timeout is closed: sockets that never do must not hold
   * connection slots (--max-connections) for ever, idle or not.
   */
  private armAuthTimeout(): void {
    if (this.authenticated || this.authTimer !== null) return
    this.authTimer = setTimeout(() => this.guard(() => this.onAuthTimeout()), this.host.config.authTimeout)
    this.authTimer.unref()
  }

  private onAuthTimeout(): void {
    this.authTimer = null
    if (this.authenticated || this.closed) return
    this.hooks.onError('UNAUTHORIZED')
    this.closed = true
    this.closing = true
    this.parser.release()
    this.socket.end(`-NOAUTH no AUTH within --auth-timeout (${this.host.config.authTimeout} ms)\r\n`)
    setTimeout(() => this.socket.destroy(), this.host.config.tune.clientCloseGraceMs).unref()
  }

  private limits(): RespLimits {
    const config = this.host.config
    const full: RespLimits = {
      maxBulkBytes: config.maxFrameBytes,
      maxCommandBytes: config.maxFrameBytes,
      // MSET of --max-batch-ops pairs, and then some for the command name.
      maxArgs: config.maxBatchOps * 2 + 16,
      maxInlineBytes: 64 * 1024,
    }
    return this.authenticated ? full : { ...full, ...UNAUTHENTICATED_LIMITS }
  }

  /** Bytes the parser holds now, and the most it has held. */
  get bufferedBytes(): number {
    return this.parser.bufferedBytes
  }

  get peakBufferedBytes(): number {
    return this.parser.peakBytes
  }

  setLimitsForAuth(): void {
    this.parser.limits = this.limits()
  }

  closeAfterReplies(): void {
    this.closing = true
  }

  reset(): void {
    this.resp3 = false
    this.name = null
    this.host.pubsub.remove(this)
    this.authenticated = this.host.config.authToken === undefined
    this.setLimitsForAuth()
    this.armAuthTimeout()
  }

  deliver(items: (string | null)[]): void {
    if (this.closed) return
    // A subscriber that reads nothing must not make the node buffer without bound.
    if (this.socket.writableLength > this.host.config.maxReplyBufferBytes) {
      this.socket.destroy()
      return
    }
    this.push(oneSlot(new PushReply(items)))
    this.scheduleFlush()
  }

  // ---- input -----------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closing || this.closed) return
    if (this.hooks.latency) this.readAt = this.host.node.clock.now()
    this.parser.push(chunk)
    if (this.countInput() > this.host.config.maxPartialFrameBytes) return this.onInputBudget()
    this.pump()
  }

  /** Brings the front end's total of input bytes up to date with this parser's; returns the total. */
  private countInput(): number {
    const held = this.parser.bufferedBytes
    const total = this.host.holdInput(held - this.countedInput)
    this.countedInput = held
    return total
  }

  /**
   * The input all RESP connections hold passed --max-partial-frame-bytes
   * with this read: this connection goes, with what it holds, so that many
   * clients sending large commands slowly cannot make the node hold
   * without bound.
   */
  private onInputBudget(): void {
    this.parser.release()
    this.countInput()
    this.hooks.onError('BUSY')
    this.push(
      oneSlot(
        errorReply(
          'ERR',
          `the node holds too many bytes of commands still arriving (--max-partial-frame-bytes ${this.host.config.maxPartialFrameBytes}); try again later`,
        ),
      ),
    )
    this.closing = true
    this.updateFlow(true)
    this.scheduleFlush()
  }

  /** The client will send nothing more: answer what it sent (allowHalfOpen), then close. */
  private onEnd(): void {
    this.inputEnded = true
    this.pump()
    this.endIfDone()
  }

  /** Dispatches parsed commands while limits and ordering allow, then pauses or resumes the socket. */
  private pump(): void {
    let stalled = false
    let parsed = false
    let partial = false
    while (!this.closing && !this.closed) {
      if (this.overLimit()) {
        stalled = true
        break
      }
      let args = this.waiting
      if (args === null) {
        try {
          args = this.parser.next()
        } catch (err) {
          this.onProtocolError(err)
          break
        }
        if (args === null) {
          partial = this.parser.bufferedBytes > 0
          break
        }
        parsed = true
      }
      const spec = commandNamed(args[0])
      // Whatever is not a GET ends the run before its turn is judged: the run's reads count as unsettled.
      if (spec !== GET_SPEC) this.endGetRun()
      // And whatever is not a plain SET ends a run of those: its writes count as unsettled.
      if (spec !== SET_SPEC || args.length !== 3) this.endSetRun()
      if (spec && !this.mayDispatch(spec.kind)) {
        this.waiting = args
        stalled = true
        break
      }
      this.waiting = null
      this.dispatch(args, spec)
    }
    this.endGetRun()
    this.endSetRun()
    this.countRuns()
    this.updateFlow(stalled)
    this.timeCommand(partial, parsed)
    this.countInput()
  }

  /** Counts the GETs and SETs pump dispatched: one counter step each, not one a command. */
  private countRuns(): void {
    if (this.gets > 0) this.hooks.onCommand(GET_SPEC.op, this.gets)
    if (this.sets > 0) this.hooks.onCommand(SET_SPEC.op, this.sets)
    this.gets = 0
    this.sets = 0
  }

  /**
   * A command must arrive whole within --frame-timeout of its first bytes
   * (as a WebSocket frame must): a client that stops in the middle of one
   * must not hold its bytes, and its connection, for ever. Time this node
   * spends not reading the socket does not count.
   */
  private timeCommand(partial: boolean, parsed: boolean): void {
    if (!partial || this.paused || this.closing || parsed) this.stopCommandTimer()
    if (!partial || this.paused || this.closing || this.commandTimer !== null) return
    this.commandTimer = setTimeout(() => this.guard(() => this.onCommandTimeout()), this.host.config.frameTimeout)
    this.commandTimer.unref()
  }

  private stopCommandTimer(): void {
    if (this.commandTimer !== null) clearTimeout(this.commandTimer)
    this.commandTimer = null
  }

  private onCommandTimeout(): void {
    this.commandTimer = null
    if (this.closed || this.closing || this.paused) return
    this.hooks.onError('INVALID')
    this.push(
      oneSlot(
        errorReply(
          'ERR',
          `a command did not arrive whole within --frame-timeout (${this.host.config.frameTimeout} ms)`,
        ),
      ),
    )
    this.closing = true
    this.scheduleFlush()
  }

  private overLimit(): boolean {
    return (
      this.owed >= this.host.config.maxInFlight || this.socket.writableLength > this.host.config.maxReplyBufferBytes
    )
  }

  private mayDispatch(kind: CommandKind): boolean {
    if (this.barrier) return false
    switch (kind) {
      case 'read':
        return this.unsettledWrites === 0
      case 'write':
        return this.unsettledReads === 0
      case 'barrier':
        return this.unsettledReads === 0 && this.unsettledWrites === 0
      default:
        return true
    }
  }

  private updateFlow(stalled: boolean): void {
    if (this.closed) return
    const stop = stalled || this.closing
    if (stop && !this.paused) {
      this.paused = true
      this.socket.pause()
    } else if (!stop && this.paused) {
      this.paused = false
      this.socket.resume()
    }
  }

  private onProtocolError(err: unknown): void {
    if (!(err instanceof RespProtocolError)) throw err
    this.hooks.onError('INVALID')
    this.hooks.onProtocolError()
    this.push(oneSlot(errorReply('ERR', err.message)))
    this.closing = true
    this.scheduleFlush()
  }

  // ---- commands ----------------------------------------------------------------

  private push(slot: Slot): void {
    this.slots.push(slot)
    this.owed += slot.count
  }

  /**
   * The slot of a command answered on its own. A run of GETs or SETs
   * ends before it, so that its slot stays after the run's.
   */
  private slotFor(op: string): Slot {
    if (this.getRun !== null) this.endGetRun()
    if (this.setRun !== null) this.endSetRun()
    const slot = oneSlot(undefined, op, this.readAt)
    this.push(slot)
    return slot
  }

  private dispatch(args: Buffer[], spec: CommandSpec | undefined): void {
    this.host.stats.commands++
    if (!spec) {
      this.hooks.onCommand('unknown')
      const shown = args
        .slice(1, 20)
        .map((a) => `'${a.toString('utf8', 0, 128)}' `)
        .join('')
      return this.fail(
        this.slotFor('unknown'),
        errorReply('ERR', `unknown command '${args[0].toString('utf8', 0, 128)}', with args beginning with: ${shown}`),
        'INVALID',
      )
    }
    if (spec === GET_SPEC) this.gets++
    else if (spec === SET_SPEC) this.sets++
    else this.hooks.onCommand(spec.op)
    if (!this.authenticated && !spec.noAuth) {
      return this.fail(this.slotFor(spec.op), errorReply('NOAUTH', 'Authentication required.'), 'UNAUTHORIZED')
    }
    if (!arityFits(spec, args.length)) {
      return this.fail(
        this.slotFor(spec.op),
        errorReply('ERR', `wrong number of arguments for '${spec.name}' command`),
        'INVALID',
      )
    }
    if (!this.resp3 && !spec.inSubscribe && (this.channels.size > 0 || this.patterns.size > 0)) {
      return this.fail(
        this.slotFor(spec.op),
        errorReply(
          'ERR',
          `Can't execute '${spec.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`,
        ),
        'INVALID',
      )
    }
    if (spec === GET_SPEC) return this.addToGetRun(args[1])
    if (spec === SET_SPEC && args.length === 3) return this.plainSet(args)
    const slot = this.slotFor(spec.op)
    let result: Reply | Promise<Reply>
    try {
      result = spec.run(this.ctx, args)
    } catch (err) {
      return this.failWith(slot, err)
    }
    if (!(result instanceof Promise)) return this.fill(slot, result)
    this.track(slot, spec.kind === 'local' ? 'read' : spec.kind, result)
  }

  private addToGetRun(keyArg: Buffer): void {
    try {
      checkGetKey(this.host, keyArg)
    } catch (err) {
      return this.failWith(this.slotFor('get'), err)
    }
    let run = this.getRun
    if (run === null) {
      const slot: Slot = { reply: undefined, done: false, count: 0, replies: null, from: 0, op: 'get', at: this.readAt }
      this.push(slot)
      run = this.getRun = { keys: [], slot }
    }
    run.keys.push(keyArg)
    run.slot.count++
    this.owed++
  }

  /** SET key value: the put, answered OK once committed, with one promise step of this connection's. */
  private plainSet(args: Buffer[]): void {
    let op: EntryOp
    try {
      op = plainSetOp(this.host, args[1], args[2])
    } catch (err) {
      return this.failWith(this.slotFor('put'), err)
    }
    let run = this.setRun
    if (run === null) {
      const slot: Slot = { reply: undefined, done: false, count: 0, replies: null, from: 0, op: 'put', at: this.readAt }
      this.push(slot)
      run = this.setRun = { ops: [], slot }
    }
    run.ops.push(op)
    run.slot.count++
    this.owed++
  }

  /** Submits the run of SETs that just ended; they count as one unsettled write until answered. */
  private endSetRun(): void {
    const run = this.setRun
    if (run === null) return
    this.setRun = null
    this.unsettledWrites++
    this.host.node.putEach(run.ops).then(
      () => this.putSettled(run.slot, false, undefined),
      (err) => this.putSettled(run.slot, true, err),
    )
  }

  /** A run of SETs settled. Runs from the promise's callback: a throw is the guard's (see guard), inline as this runs per run. */
  private putSettled(slot: Slot, failed: boolean, err: unknown): void {
    try {
      this.unsettledWrites--
      if (!failed) return this.fill(slot, OK)
      // A run some of whose SETs were refused (a conflict policy's write of a damaged record) answers each for itself.
      const outcomes = err instanceof RunRefused ? err.outcomes : null
      const replies: Reply[] = new Array(slot.count)
      for (let i = 0; i < slot.count; i++) {
        const outcome = outcomes === null ? undefined : outcomes[i]
        if (outcome && !outcome.ok) replies[i] = this.errorFor(outcome.error)
        else if (!outcome) replies[i] = this.errorFor(err)
        else replies[i] = OK
      }
      slot.replies = replies
      this.fill(slot, undefined)
    } catch (thrown) {
      this.threw(thrown)
    }
  }

  /** Hands the run that just ended to the front end's GetBatch; its GETs count as unsettled reads until answered. */
  private endGetRun(): void {
    const run = this.getRun
    if (run === null) return
    this.getRun = null
    this.unsettledReads++
    // Answered with every connection's run of the batch: a throw here must not keep the others' from them.
    this.host.gets.read(run.keys, (answers, from) => {
      try {
        this.unsettledReads--
        const slot = run.slot
        // This run's range of the batch's answers is its own: a failed read's error becomes its reply there.
        const replies = answers as (Reply | undefined)[]
        for (let i = from; i < from + slot.count; i++) {
          const answer = answers[i]
          if (answer instanceof Error) replies[i] = this.errorFor(answer)
        }
        slot.replies = replies
        slot.from = from
        this.fill(slot, undefined)
      } catch (thrown) {
        this.threw(thrown)
      }
    })
  }

  /** Answers `slot` with what `result` settles to; until then the command counts as unsettled of its kind. */
  private track(slot: Slot, kind: CommandKind, result: Promise<Reply>): void {
    if (kind === 'read') this.unsettledReads++
    else if (kind === 'write') this.unsettledWrites++
    else this.barrier = true
    result.then(
      (reply) => this.settle(slot, kind, reply, undefined),
      (err) => this.settle(slot, kind, undefined, err),
    )
  }

  /** A command's promise settled. Runs from its callback: a throw is the guard's (see guard), inline as this runs per command. */
  private settle(slot: Slot, kind: CommandKind, reply: Reply | undefined, err: unknown): void {
    try {
      if (kind === 'read') this.unsettledReads--
      else if (kind === 'write') this.unsettledWrites--
      else this.barrier = false
      if (err !== undefined) this.failWith(slot, err)
      else this.fill(slot, reply as Reply)
    } catch (thrown) {
      this.threw(thrown)
    }
  }

  /** Marks `slot` answered (a run's slot with its replies set, or `reply`) and schedules the write. */
  private fill(slot: Slot, reply: Reply | undefined): void {
    slot.reply = reply
    slot.done = true
    this.scheduleFlush()
  }

  private fail(slot: Slot, reply: Reply, code: ErrorCode): void {
    this.hooks.onError(code)
    this.fill(slot, reply)
  }

  private failWith(slot: Slot, err: unknown): void {
    this.fill(slot, this.errorFor(err))
  }

  /** The error reply for what a command threw or rejected with, counted (and logged when internal). */
  private errorFor(err: unknown): Reply {
    const { reply, code } = replyForError(err)
    if (code === 'INTERNAL') this.host.node.logger.error('RESP command failed', { err })
    this.hooks.onError(code)
    return reply
  }

  // ---- output ------------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    // After the current turn's promise jobs: replies settled together (one
    // group commit's writers, one batch of reads) leave in one write.
    process.nextTick(() => this.onFlushTick())
  }

  /** Runs from process.nextTick: a throw is the guard's (see guard), inline as this runs per flush. */
  private onFlushTick(): void {
    this.flushScheduled = false
    try {
      this.flush()
      // Room in the in-flight cap may let a stalled pipeline go on.
      this.pump()
      this.endIfDone()
      this.notifyIfIdle()
    } catch (thrown) {
      this.threw(thrown)
    }
  }

  private flush(): void {
    if (this.closed) return
    const slots = this.slots
    let head = this.slotHead
    const latency = this.hooks.latency
    const now = latency && head < slots.length && slots[head].done ? this.host.node.clock.now() : 0
    // Replies of one op to commands of one read (a pipelined run of GETs) take the same time: observed at once.
    let op: string | undefined
    let at = 0
    let times = 0
    const writer = this.writer
    const resp3 = this.resp3
    while (head < slots.length && slots[head].done) {
      const slot = slots[head]
      const count = slot.count
      const replies = slot.replies
      if (replies !== null) {
        for (let i = slot.from, end = slot.from + count; i < end; i++) {
          const reply = replies[i]
          writer.write(reply === undefined ? null : (reply as Reply), resp3)
        }
      } else if (count === 1) {
        writer.write(slot.reply as Reply, resp3)
      } else {
        writer.repeat(slot.reply as Reply, count, resp3)
      }
      this.owed -= count
      if (latency && slot.op !== undefined) {
        if (slot.op === op && slot.at === at) times += count
        else {
          if (times > 0) latency.observe(op as string, (now - at) / 1000, times)
          op = slot.op
          at = slot.at
          times = count
        }
      }
      slots[head] = undefined as unknown as Slot
      head++
    }
    if (latency && times > 0) latency.observe(op as string, (now - at) / 1000, times)
    if (head === slots.length) {
      slots.length = 0
      this.slotHead = 0
    } else if (head > 1024 && head > slots.length / 2) {
      this.slots = slots.slice(head)
      this.slotHead = 0
    } else {
      this.slotHead = head
    }
    if (writer.length > 0) this.socket.write(writer.take())
  }

  /**
   * Ends the socket once a connection that reads no more (QUIT, a protocol
   * error, or a client that ended its side and whose every complete
   * command has run) owes no replies.
   */
  private endIfDone(): void {
    if (this.closed || this.owed > 0 || this.waiting !== null) return
    if (!this.closing && !(this.inputEnded && !this.parser.hasInput)) return
    if (this.unsettledReads > 0 || this.unsettledWrites > 0 || this.barrier) return
    this.closed = true
    this.parser.release()
    this.socket.end()
    // A peer that does not read its last replies is dropped after a while.
    setTimeout(() => this.socket.destroy(), this.host.config.tune.clientCloseGraceMs).unref()
  }

  /**
   * Runs `step` where nothing above it would catch a throw (a timer, a
   * tick, a promise's callback, the read batch's delivery): a throw closes
   * this connection alone, logged and counted as the socket's own
   * listeners do (guarded), not the process.
   */
  private guard(step: () => void): void {
    try {
      step()
    } catch (err) {
      this.threw(err)
    }
  }

  private threw(err: unknown): void {
    handlerThrew('resp', this.hooks.logger, err)
    try {
      this.dropAfterThrow()
    } catch {}
  }

  /** A handler threw: nothing more is read or answered; the client gets an error and the socket goes. */
  private dropAfterThrow(): void {
    if (this.closed) return
    this.closed = true
    this.closing = true
    this.parser.release()
    this.socket.resume()
    this.socket.end('-ERR internal error; closing the connection\r\n')
    setTimeout(() => this.socket.destroy(), this.host.config.tune.clientCloseGraceMs).unref()
  }

  private onSocketClosed(): void {
    this.stopCommandTimer()
    this.parser.release()
    this.countInput()
    if (this.authTimer !== null) clearTimeout(this.authTimer)
    this.authTimer = null
    this.closed = true
    this.closing = true
    this.parser.release()
    this.slots = []
    this.slotHead = 0
    this.owed = 0
    this.host.pubsub.remove(this)
    this.hooks.onClosed(this)
    for (const w of this.idleWaiters.splice(0)) w()
  }

  private notifyIfIdle(): void {
    if (this.owed === 0 && this.unsettledReads === 0 && this.unsettledWrites === 0 && !this.barrier) {
      for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  /** Stops reading commands (shutdown); those already read are still answered. */
  stopReading(): void {
    this.closing = true
    this.updateFlow(true)
  }

  /** Resolves once every command dispatched so far has been answered. */
  drained(): Promise<void> {
    if (this.closed || (this.owed === 0 && this.unsettledReads === 0 && this.unsettledWrites === 0)) {
      return Promise.resolve()
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), this.host.config.tune.clientCloseGraceMs).unref()
  }
}
