/*
 * The NATS client (@nats-io/transport-node, @nats-io/jetstream), typed as the subset the broker
 * suite uses. Its own declaration files do not compile under this project's
 * exactOptionalPropertyTypes without skipLibCheck, so they are loaded through a specifier the
 * type checker does not follow.
 */

export interface NatsHeaders {
  get(name: string): string;
  set(name: string, value: string): void;
}

export interface JsMsg {
  readonly headers?: NatsHeaders;
  readonly redelivered: boolean;
  ack(): void;
  nak(millis?: number): void;
}

export interface ConsumerMessages extends AsyncIterable<JsMsg> {
  stop(): void;
}

export interface NatsConnection {
  close(): Promise<void>;
}

interface JetStreamClient {
  publish(
    subject: string,
    payload: Uint8Array,
    options?: { headers?: NatsHeaders; msgID?: string },
  ): Promise<{ seq: number; duplicate: boolean }>;
  consumers: {
    get(
      stream: string,
      name: string,
    ): Promise<{ consume(options?: { max_messages?: number }): Promise<ConsumerMessages> }>;
  };
}

interface JetStreamManager {
  streams: {
    add(config: { name: string; subjects: string[]; duplicate_window?: number }): Promise<unknown>;
    delete(name: string): Promise<boolean>;
    update(name: string, config: { duplicate_window?: number }): Promise<unknown>;
  };
  consumers: {
    add(
      stream: string,
      config: { durable_name: string; ack_policy: string; ack_wait: number },
    ): Promise<unknown>;
    info(stream: string, name: string): Promise<{ num_pending: number; num_ack_pending: number }>;
  };
}

export interface Nats {
  connect(options: { servers: string; timeout?: number }): Promise<NatsConnection>;
  headers(): NatsHeaders;
  nanos(millis: number): number;
  jetstream(nc: NatsConnection): JetStreamClient;
  jetstreamManager(nc: NatsConnection): Promise<JetStreamManager>;
  AckPolicy: { Explicit: string };
}

const TRANSPORT: string = '@nats-io/transport-node';
const JETSTREAM: string = '@nats-io/jetstream';

export async function loadNats(): Promise<Nats> {
  const transport = (await import(TRANSPORT)) as Pick<Nats, 'connect' | 'headers' | 'nanos'>;
  const js = (await import(JETSTREAM)) as Pick<Nats, 'jetstream' | 'jetstreamManager' | 'AckPolicy'>;
  return {
    connect: transport.connect,
    headers: transport.headers,
    nanos: transport.nanos,
    jetstream: js.jetstream,
    jetstreamManager: js.jetstreamManager,
    AckPolicy: js.AckPolicy,
  };
}
