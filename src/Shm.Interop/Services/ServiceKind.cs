namespace Shm.Interop;

/// <summary>What a service does; stored in its segment's header.</summary>
public enum ServiceKind
{
    /// <summary>Not a readable service (see <see cref="ServiceInfo.Problem"/>).</summary>
    Unknown = 0,

    /// <summary>Publish-subscribe: every subscriber receives every sample (<see cref="PublishSubscribeService"/>).</summary>
    PublishSubscribe = 1,

    /// <summary>Request-response: clients send requests, each taken by one server and answered (<see cref="RequestResponseService"/>).</summary>
    RequestResponse = 2,

    /// <summary>A blackboard: a table of keys, each holding the latest value (<see cref="BlackboardService"/>).</summary>
    Blackboard = 3,
}
