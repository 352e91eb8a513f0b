using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// The README's blocking-call rule, checked over the whole public surface of Shm.Interop: for every
/// operation X that may wait, <c>X(ct)</c>, <c>TryX(…, out v, timeout, ct)</c>, <c>XAsync(ct)</c>,
/// <c>TryXAsync(…, timeout, ct)</c> and the non-blocking <c>TryX(…)</c>, nothing else.
/// </summary>
public class BlockingCallRuleTests
{
    /// <summary>The operations that may wait, by the name of their blocking form.</summary>
    private static readonly string[] Waits = ["Wait", "WaitAll", "Lock", "Read", "Write", "Receive", "Loan"];

    [Fact]
    public void Every_public_method_follows_the_blocking_call_rule()
    {
        List<string> broken = [.. PublicMethods(typeof(SharedRegion).Assembly.GetExportedTypes()).SelectMany(Violations)];

        Assert.True(broken.Count == 0, "Methods that break the blocking-call rule (README, Blocking calls):\n" + string.Join("\n", broken));
    }

    [Fact]
    public void The_rule_catches_what_it_forbids()
    {
        // Each of these breaks one part of the rule; the check must name every one of them.
        string[] broken = [.. PublicMethods([typeof(Breaking)]).SelectMany(Violations)];

        Assert.Equal(
            [
                "Breaking.Read(): one of 2 overloads",
                "Breaking.Read(Int32): one of 2 overloads",
                "Breaking.TryLoan(Int32, TimeSpan, Int32&): parameters other than a CancellationToken follow the timeout",
                "Breaking.TryLoan(Int32, TimeSpan, Int32&): the out value comes after the timeout",
                "Breaking.TryRead(CancellationToken): a Try form that takes a token takes a timeout",
                "Breaking.TryReceive(TimeSpan, CancellationToken): returns String, not bool or a task of bool or of a nullable",
                "Breaking.TryReceiveAsync(TimeSpan): returns Task`1, not bool or a task of bool or of a nullable",
                "Breaking.TryWait(TimeSpan): 2 overloads take a timeout",
                "Breaking.TryWait(TimeSpan, CancellationToken): 2 overloads take a timeout",
                "Breaking.Wait(TimeSpan): a blocking form takes a timeout (it belongs to TryWait)",
                "Breaking.WaitAsync(CancellationToken): the token is not optional",
            ],
            broken.Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The public methods the types declare, less property accessors and overrides of a method declared
    /// elsewhere (a <see cref="System.IO.Stream"/>'s <c>Read</c> keeps the shape its base gives it).
    /// </summary>
    private static IEnumerable<MethodInfo> PublicMethods(IEnumerable<Type> types) =>
        types.SelectMany(type => type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(OwnShape);

    private static bool OwnShape(MethodInfo method) =>
        !method.IsSpecialName && method.GetBaseDefinition().DeclaringType!.Assembly == method.DeclaringType!.Assembly;

    private static IEnumerable<string> Violations(MethodInfo method)
    {
        string name = method.Name;
        string plain = name.StartsWith("Try", StringComparison.Ordinal) ? name[3..] : name;
        plain = plain.EndsWith("Async", StringComparison.Ordinal) ? plain[..^5] : plain;
        bool isWait = Waits.Contains(plain);
        bool isTry = name.StartsWith("Try", StringComparison.Ordinal);
        ParameterInfo[] parameters = method.GetParameters();
        int timeout = Array.FindIndex(parameters, p => p.ParameterType == typeof(TimeSpan));
        int token = Array.FindIndex(parameters, p => p.ParameterType == typeof(CancellationToken));
        string where = $"{method.DeclaringType!.Name}.{name}({string.Join(", ", parameters.Select(p => p.ParameterType.Name))})";

        if (isTry && timeout >= 0)
        {
            if (!ReturnsBoolOrNullable(method))
            {
                yield return $"{where}: returns {method.ReturnType.Name}, not bool or a task of bool or of a nullable";
            }
            if (parameters.Skip(timeout + 1).Any(p => p.ParameterType != typeof(CancellationToken)))
            {
                yield return $"{where}: parameters other than a CancellationToken follow the timeout";
            }
            if (Array.FindIndex(parameters, p => p.IsOut) > timeout)
            {
                yield return $"{where}: the out value comes after the timeout";
            }
            if (SameNamedOverloads(method).Count(m => m.GetParameters().Any(p => p.ParameterType == typeof(TimeSpan))) > 1)
            {
                yield return $"{where}: {SameNamedOverloads(method).Count(m => m.GetParameters().Any(p => p.ParameterType == typeof(TimeSpan)))} overloads take a timeout";
            }
        }
        if (isTry && timeout < 0 && token >= 0)
        {
            yield return $"{where}: a Try form that takes a token takes a timeout";
        }
        if (isWait && !isTry && timeout >= 0)
        {
            yield return $"{where}: a blocking form takes a timeout (it belongs to Try{plain})";
        }
        if (isWait && token >= 0 && (token != parameters.Length - 1 || !parameters[token].HasDefaultValue))
        {
            yield return $"{where}: the token is not optional";
        }
        // The inherited overloads count too, so an overload a derived type adds to its base's wait is caught.
        int overloads = SameNamedOverloads(method).Length;
        if (isWait && !isTry && overloads > 1)
        {
            yield return $"{where}: one of {overloads} overloads";
        }
    }

    /// <summary>The public methods of the same name on the method's type, the inherited ones included.</summary>
    private static MethodInfo[] SameNamedOverloads(MethodInfo method) =>
        [.. method.DeclaringType!.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).Where(m => m.Name == method.Name && OwnShape(m))];

    private static bool ReturnsBoolOrNullable(MethodInfo method)
    {
        Type type = method.ReturnType;
        if (type == typeof(bool))
        {
            return true;
        }
        if (!type.IsGenericType || (type.GetGenericTypeDefinition() != typeof(Task<>) && type.GetGenericTypeDefinition() != typeof(ValueTask<>)))
        {
            return false;
        }
        Type result = type.GetGenericArguments()[0];
        if (result == typeof(bool) || Nullable.GetUnderlyingType(result) is not null)
        {
            return true;
        }
        NullabilityInfo info = new NullabilityInfoContext().Create(method.ReturnParameter);
        return !result.IsValueType && info.GenericTypeArguments[0].ReadState == NullabilityState.Nullable;
    }

    /// <summary>One of each way to break the rule (public, so that it looks like the surface the rule checks).</summary>
    public sealed class Breaking
    {
        /// <summary>A blocking form with a timeout.</summary>
        public void Wait(TimeSpan timeout) => _ = timeout;

        /// <summary>A timed Try form whose out value follows the timeout, with another input after it.</summary>
        public bool TryLoan(int size, TimeSpan timeout, out int loan) => (loan = size) == 0 && timeout == default;

        /// <summary>A timed Try form that returns a value, not bool.</summary>
        public string TryReceive(TimeSpan timeout, CancellationToken cancellationToken = default) => $"{timeout}{cancellationToken}";

        /// <summary>An async timed Try form whose result may not be null.</summary>
        public Task<string> TryReceiveAsync(TimeSpan timeout) => Task.FromResult($"{timeout}");

        /// <summary>A token without a timeout on a Try form.</summary>
        public bool TryRead(CancellationToken cancellationToken = default) => cancellationToken.IsCancellationRequested;

        /// <summary>Two timed overloads of one Try form.</summary>
        public bool TryWait(TimeSpan timeout) => timeout == default;

        /// <summary>Two timed overloads of one Try form.</summary>
        public bool TryWait(TimeSpan timeout, CancellationToken cancellationToken = default) => timeout == default && cancellationToken.IsCancellationRequested;

        /// <summary>A token that must be passed.</summary>
        public Task WaitAsync(CancellationToken cancellationToken) => Task.Delay(0, cancellationToken);

        /// <summary>An overload family of a blocking form.</summary>
        public int Read() => 0;

        /// <summary>An overload family of a blocking form.</summary>
        public int Read(int offset) => offset;
    }
}
