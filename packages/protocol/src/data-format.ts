/**
 * The version of the stored-record format, which is also what replication
 * links, multi-master peer links and snapshot (backup) files carry:
 *
 *   1  records without a checksum (data dirs, links and backups from before
 *      2026-11-29 carry no version and are format 1)
 *   2  every record written carries a CRC-32C of its key and contents
 *      (flag 0x08 of the record header, see the server's storage/record.ts)
 *
 * A build reads every format up to its own. Records of a newer format would
 * be misread, so each place that receives them checks the version first:
 * a data dir written by a newer build is refused at start, an upstream or
 * peer that writes a newer format refuses a downstream that reads an older
 * one (upgrade replicas before their master, as with Redis), and a backup
 * of a newer format is refused by --restore.
 */
export const DATA_FORMAT = 2

/** A sender that names no format speaks format 1. */
export function formatOf(declared: number | undefined | null): number {
  return declared ?? 1
}

/** Why an upstream or peer refuses a link whose other end reads only an older format. */
export function olderReader(who: 'replica' | 'peer', declared: number | undefined | null): string {
  return `the ${who} reads records up to format ${formatOf(declared)} and this node writes format ${DATA_FORMAT}: upgrade the ${who} to a tandem that reads format ${DATA_FORMAT} (upgrade replicas before their master)`
}
