using System;
using System.Collections.Generic;
using System.Linq;
using System.Linq.Expressions;
using System.Reflection;
using System.Reflection.Emit;
using System.Threading;
using System.Threading.Tasks;

namespace Shm.TestSupport;

/// <summary>
/// Threads that keep the runtime busy while a test forks, each holding some runtime lock much of
/// the time: what a real program's other threads (a test host, ASP.NET, timers) do.
/// </summary>
public sealed class BusyNeighbours : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Thread> _threads = [];
    private long _work;
    private long _heapErrors;

    /// <summary>What each kind of neighbour does.</summary>
    public enum Kind
    {
        /// <summary>Allocates and keeps arrays, checking that what it kept is intact.</summary>
        Allocate,

        /// <summary>Compiles and runs new dynamic methods and expression trees without pause.</summary>
        Compile,

        /// <summary>Loads new generic instantiations without pause.</summary>
        LoadTypes,

        /// <summary>Throws and catches exceptions.</summary>
        Throw,

        /// <summary>Reads reflection metadata of the core library.</summary>
        Reflect,

        /// <summary>Runs small thread-pool tasks.</summary>
        ThreadPool,
    }

    /// <summary>Starts one thread per kind given.</summary>
    public BusyNeighbours(params Kind[] kinds)
    {
        foreach (Kind kind in kinds)
        {
            var thread = new Thread(() => Run(kind)) { IsBackground = true, Name = $"busy {kind}" };
            _threads.Add(thread);
            thread.Start();
        }
    }

    /// <summary>Units of work the neighbours did.</summary>
    public long Work => Interlocked.Read(ref _work);

    /// <summary>Arrays an allocating neighbour found corrupted (must stay 0).</summary>
    public long HeapErrors => Interlocked.Read(ref _heapErrors);

    private void Run(Kind kind)
    {
        var random = new Random((int)kind);
        var kept = new byte[64][];
        var types = new List<Type> { typeof(int), typeof(long), typeof(string), typeof(Guid), typeof(byte), typeof(double) };
        Type[] generics = [typeof(List<>), typeof(HashSet<>), typeof(Queue<>), typeof(Stack<>), typeof(Dictionary<,>), typeof(KeyValuePair<,>), typeof(Tuple<,>)];
        Type[] library = typeof(object).Assembly.GetTypes();
        for (long n = 0; !_stop.IsCancellationRequested; n++)
        {
            if (n % 256 == 0)
            {
                Thread.Yield(); // busy, but leaves the forking thread a share of the cores
            }
            switch (kind)
            {
                case Kind.Allocate:
                    int slot = random.Next(kept.Length);
                    if (kept[slot] is byte[] old && old.Any(b => b != (byte)old.Length))
                    {
                        Interlocked.Increment(ref _heapErrors);
                    }
                    int size = random.Next(16, 8192);
                    kept[slot] = Enumerable.Repeat((byte)size, size).ToArray();
                    break;
                case Kind.Compile:
                    var method = new DynamicMethod($"f{n}", typeof(long), [typeof(long)]);
                    ILGenerator il = method.GetILGenerator();
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldc_I8, n);
                    il.Emit(OpCodes.Add);
                    il.Emit(OpCodes.Ret);
                    ((Func<long, long>)method.CreateDelegate(typeof(Func<long, long>)))(1);
                    if (n % 4 == 0)
                    {
                        ParameterExpression x = Expression.Parameter(typeof(long));
                        Expression.Lambda<Func<long, long>>(Expression.Multiply(x, Expression.Constant(n)), x).Compile()(2);
                    }
                    break;
                case Kind.LoadTypes:
                    Type generic = generics[random.Next(generics.Length)];
                    Type made = generic.MakeGenericType([.. generic.GetGenericArguments().Select(_ => types[random.Next(types.Count)])]);
                    Activator.CreateInstance(made.IsValueType || made.GetConstructor(Type.EmptyTypes) is null ? typeof(object) : made);
                    if (types.Count < 4000)
                    {
                        types.Add(made);
                    }
                    break;
                case Kind.Throw:
                    try
                    {
                        throw new InvalidOperationException("busy");
                    }
                    catch (InvalidOperationException)
                    {
                    }
                    break;
                case Kind.Reflect:
                    Type type = library[random.Next(library.Length)];
                    foreach (MethodInfo info in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static).Take(10))
                    {
                        info.GetCustomAttributes(false);
                        info.GetParameters();
                    }
                    break;
                case Kind.ThreadPool:
                    Task.WaitAll([.. Enumerable.Range(0, 8).Select(_ => Task.Run(() => Interlocked.Increment(ref _work)))]);
                    break;
            }
            Interlocked.Increment(ref _work);
        }
    }

    /// <summary>Stops and joins every neighbour.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        foreach (Thread thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(30));
        }
    }
}
