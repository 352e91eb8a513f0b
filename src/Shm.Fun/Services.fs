namespace Shm.Fun

open System
open Shm.Interop

/// <summary>
/// Publish-subscribe services found by name, as scoped resources: the service, its publishers and its
/// subscribers are released (a participant leaves its slot, the service object its hold) when the
/// scope closes, newest first. The service itself lives while any process uses it (see
/// <c>PublishSubscribeService</c>).
/// </summary>
/// <example>
/// <code>
/// shm {
///     let! service = PubSub.service "telemetry" (PublishSubscribeConfig(MaxSubscribers = 4))
///     let! sub = PubSub.subscriber service
///     use sample = sub.Receive()
///     return sample.ToArray()
/// }
/// </code>
/// </example>
[<RequireQualifiedAccess>]
module PubSub =

    /// <summary>Opens the service <paramref name="name"/>, or creates it with <paramref name="config"/> (an existing one must have exactly this configuration).</summary>
    let service (name: string) (config: PublishSubscribeConfig) : Shm<PublishSubscribeService> =
        fun scope -> Shm.acquire (fun () -> PublishSubscribeService.CreateOrOpen(name, config)) scope

    /// <summary>Opens the existing service <paramref name="name"/>, whatever its configuration.</summary>
    let openService (name: string) : Shm<PublishSubscribeService> =
        fun scope -> Shm.acquire (fun () -> PublishSubscribeService.Open name) scope

    /// <summary>Attaches a publisher to <paramref name="service"/>; it leaves its slot when the scope closes.</summary>
    let publisher (service: PublishSubscribeService) : Shm<Publisher> =
        fun scope -> Shm.acquire (fun () -> service.CreatePublisher()) scope

    /// <summary>Attaches a subscriber with the service's default overflow policy; it leaves its slot when the scope closes.</summary>
    let subscriber (service: PublishSubscribeService) : Shm<Subscriber> =
        fun scope -> Shm.acquire (fun () -> service.CreateSubscriber()) scope

    /// <summary>Attaches a subscriber with <paramref name="options"/> (overflow policy, history, held samples).</summary>
    let subscriberWith (options: SubscriberOptions) (service: PublishSubscribeService) : Shm<Subscriber> =
        fun scope -> Shm.acquire (fun () -> service.CreateSubscriber options) scope

    /// <summary>Publishes a copy of <paramref name="bytes"/> as one sample, waiting as long as it takes for room (a loan, filled, published).</summary>
    let publish (publisher: Publisher) (bytes: ReadOnlyMemory<byte>) : unit =
        use loan = publisher.Loan bytes.Length
        bytes.Span.CopyTo loan.Span
        loan.Publish()

    /// <summary>Receives the next sample and returns a copy of its bytes (the sample is released at once).</summary>
    let receive (subscriber: Subscriber) : byte[] =
        use sample = subscriber.Receive()
        sample.ToArray()

/// <summary>
/// Blackboard services found by name, as scoped resources: the service and its writer are released
/// (the writer gives its slot back, the service object its hold) when the scope closes, newest first.
/// Keys are the indexes 0 to <c>Keys - 1</c>; values an unmanaged type of the configured size.
/// </summary>
/// <example>
/// <code>
/// shm {
///     let! board = Blackboard.service "positions" (BlackboardConfig(Keys = 8, ValueSize = 16))
///     let! writer = Blackboard.writer board
///     Blackboard.write writer 3 (struct (1.0, 2.0))
///     return Blackboard.read&lt;struct (float * float)&gt; board 3
/// }
/// </code>
/// </example>
[<RequireQualifiedAccess>]
module Blackboard =

    /// <summary>Opens the blackboard <paramref name="name"/>, or creates it with <paramref name="config"/> (an existing one must have exactly this configuration).</summary>
    let service (name: string) (config: BlackboardConfig) : Shm<BlackboardService> =
        fun scope -> Shm.acquire (fun () -> BlackboardService.CreateOrOpen(name, config)) scope

    /// <summary>Opens the existing blackboard <paramref name="name"/>, whatever its configuration.</summary>
    let openService (name: string) : Shm<BlackboardService> =
        fun scope -> Shm.acquire (fun () -> BlackboardService.Open name) scope

    /// <summary>Attaches the writer of <paramref name="service"/> (one at a time); it gives its slot back when the scope closes.</summary>
    let writer (service: BlackboardService) : Shm<BlackboardWriter> =
        fun scope -> Shm.acquire (fun () -> service.CreateWriter()) scope

    /// <summary>Writes <paramref name="value"/> as entry <paramref name="key"/>'s latest value; never waits.</summary>
    let write<'T when 'T: unmanaged and 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType>
        (writer: BlackboardWriter)
        (key: int)
        (value: 'T)
        : unit =
        let copy = value
        writer.Write(key, &copy)

    /// <summary>Reads entry <paramref name="key"/>'s latest whole value, waiting as long as a write in flight takes.</summary>
    let read<'T when 'T: unmanaged and 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType>
        (service: BlackboardService)
        (key: int)
        : 'T =
        service.Read<'T>(key)

/// <summary>
/// Request-response services found by name, as scoped resources: the service, its clients and its
/// servers are released (each gives its slot back, the service object its hold) when the scope
/// closes, newest first. Requests and responses are copied bytes.
/// </summary>
/// <example>
/// <code>
/// shm {
///     let! service = RequestResponse.service "jobs" (RequestResponseConfig(MaxClients = 4))
///     let! client = RequestResponse.client service
///     return RequestResponse.request client (ReadOnlyMemory "ping"B)
/// }
/// </code>
/// </example>
[<RequireQualifiedAccess>]
module RequestResponse =

    /// <summary>Opens the service <paramref name="name"/>, or creates it with <paramref name="config"/> (an existing one must have exactly this configuration).</summary>
    let service (name: string) (config: RequestResponseConfig) : Shm<RequestResponseService> =
        fun scope -> Shm.acquire (fun () -> RequestResponseService.CreateOrOpen(name, config)) scope

    /// <summary>Opens the existing service <paramref name="name"/>, whatever its configuration.</summary>
    let openService (name: string) : Shm<RequestResponseService> =
        fun scope -> Shm.acquire (fun () -> RequestResponseService.Open name) scope

    /// <summary>Attaches a client to <paramref name="service"/>; it cancels what is pending and leaves its slot when the scope closes.</summary>
    let client (service: RequestResponseService) : Shm<Client> =
        fun scope -> Shm.acquire (fun () -> service.CreateClient()) scope

    /// <summary>Attaches a server to <paramref name="service"/>; it leaves its slot when the scope closes.</summary>
    let server (service: RequestResponseService) : Shm<Server> =
        fun scope -> Shm.acquire (fun () -> service.CreateServer()) scope

    /// <summary>Sends <paramref name="request"/> and returns the bytes of its first response (the rest of its stream, if any, is cancelled).</summary>
    let request (client: Client) (request: ReadOnlyMemory<byte>) : byte[] =
        use pending = client.Send request.Span
        pending.Receive().Span.ToArray()

    /// <summary>Takes the next request, answers it with <paramref name="answer"/> of its bytes as one response, and completes it.</summary>
    let serveOne (server: Server) (answer: byte[] -> byte[]) : unit =
        use request = server.Receive()
        request.Respond(ReadOnlySpan(answer (request.Span.ToArray())))
        request.Complete()
