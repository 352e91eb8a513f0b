using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The services section of include/shm/shm.h: it compiles strictly as C and C++, and its publisher and subscriber work with .NET's.</summary>
public sealed class ServiceCTests : IDisposable
{
    private const string Prelude = """
        #include <shm/shm.h>

        /* Payloads.LengthOf and Payloads.Fill of the .NET tests. */
        static inline uint32_t length_of(int32_t publisher, int64_t index, int32_t max)
        {
            return 16 + (uint32_t)((((index * 37) + (publisher * 11)) & 0x7FFFFFFF) % (max - 15));
        }

        static inline void fill(unsigned char *bytes, uint32_t length, int32_t publisher, int64_t index)
        {
            int32_t stated = (int32_t)length;
            memcpy(bytes, &publisher, 4);
            memcpy(bytes + 4, &stated, 4);
            memcpy(bytes + 8, &index, 8);
            for (uint32_t i = 16; i < length; i++) bytes[i] = (unsigned char)(index * 31 + (int64_t)i * 7 + publisher);
        }

        static inline int open_service(struct shm_service *service, const char *name)
        {
            int error = shm_service_open(service, name);
            if (error != 0) fprintf(stderr, "shm_service_open: %d\n", error);
            return error;
        }

        """;

    /// <summary>argv: name, count, path. Receives samples 0..count-1 of publisher 0 (each intact, in order), writes their FNV-1a to path.</summary>
    private const string CSubscriber = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_service service;
            struct shm_subscriber subscriber;
            struct shm_sample sample;
            static unsigned char want[70000];
            uint64_t hash = 0xCBF29CE484222325ull;
            (void)argc;
            if (open_service(&service, argv[1]) != 0) return 2;
            if (shm_subscriber_attach(&subscriber, &service, SHM_SVC_BLOCK) != 0) return 3;
            for (int64_t i = 0, n = atoll(argv[2]); i < n; i++) {
                int error = shm_subscriber_receive(&subscriber, 30000000000ll, &sample);
                if (error != 0) { fprintf(stderr, "receive %lld: %d\n", (long long)i, error); return 4; }
                fill(want, sample.length, 0, i);
                if (sample.publisher != 0 || sample.missed != 0 || sample.sequence != (uint64_t)i + 1 || memcmp(sample.data, want, sample.length) != 0) {
                    fprintf(stderr, "sample %lld wrong\n", (long long)i);
                    return 5;
                }
                for (uint32_t k = 0; k < sample.length; k++) hash = (hash ^ ((const unsigned char *)sample.data)[k]) * 0x100000001B3ull;
                if (shm_subscriber_release(&subscriber, &sample) != 0) return 6;
            }
            shm_subscriber_detach(&subscriber);
            shm_service_close(&service);
            FILE *out = fopen(argv[3], "w");
            fprintf(out, "%llu\n", (unsigned long long)hash);
            fclose(out);
            return 0;
        }
        """;

    /// <summary>argv: name, count, id. Publishes samples 0..count-1 of publisher id, of lengths up to 4000.</summary>
    private const string CPublisher = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_service service;
            struct shm_publisher publisher;
            void *payload;
            (void)argc;
            if (open_service(&service, argv[1]) != 0) return 2;
            if (shm_publisher_attach(&publisher, &service) != 0) return 3;
            int32_t id = atoi(argv[3]);
            for (int64_t i = 0, n = atoll(argv[2]); i < n; i++) {
                uint32_t length = length_of(id, i, 4000);
                int error = shm_publisher_loan(&publisher, length, 30000000000ll, &payload);
                if (error != 0) { fprintf(stderr, "loan %lld: %d\n", (long long)i, error); return 4; }
                fill((unsigned char *)payload, length, id, i);
                if (shm_publisher_publish(&publisher, length) != 0) return 5;
            }
            shm_publisher_detach(&publisher);
            shm_service_close(&service);
            return 0;
        }
        """;

    /// <summary>Every function of the section, called once (on a service that does not exist), so the compiler sees them all.</summary>
    private const string CEveryFunction = """
        int main(void)
        {
            struct shm_service s;
            struct shm_publisher p;
            struct shm_subscriber sub;
            struct shm_sample sample;
            void *payload;
            if (shm_service_open(&s, "no-such-service-anywhere") != -ENOENT) return 1;
            if (shm_service_open(&s, "a/b") != -EINVAL) return 2;
            if (shm_svc_check(0, 1, 2, 3, 0) == shm_svc_check(0, 1, 2, 3, 1)) return 3;
            if (0) {
                shm_publisher_attach(&p, &s); shm_publisher_loan(&p, 1, 0, &payload); shm_publisher_publish(&p, 1); shm_publisher_detach(&p);
                shm_subscriber_attach(&sub, &s, SHM_SVC_BLOCK); shm_subscriber_receive(&sub, 0, &sample); shm_subscriber_release(&sub, &sample); shm_subscriber_detach(&sub);
                shm_service_close(&s);
            }
            return 0;
        }
        """;

    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    /// <summary>
    /// The section alone (what the full header will compile as once the rest of it does, see issue 15),
    /// with the _GNU_SOURCE the header's top defines: C11 strict, gnu11 and C++17, every warning an error.
    /// </summary>
    [Theory]
    [InlineData("cc", "-std=c11")]
    [InlineData("cc", "-std=gnu11")]
    [InlineData("g++", "-std=c++17")]
    public void The_services_section_compiles_with_every_warning_an_error_and_its_functions_answer(string compiler, string standard)
    {
        string header = File.ReadAllText(Repository.PathOf("include/shm/shm.h"));
        int start = header.IndexOf("/* =====", header.IndexOf(" * SERVICES: publish-subscribe", StringComparison.Ordinal) - 200, StringComparison.Ordinal);
        int end = header.IndexOf("#endif /* SHM_SERVICES_SECTION_ */", StringComparison.Ordinal) + "#endif /* SHM_SERVICES_SECTION_ */".Length;
        string section = "#ifndef _GNU_SOURCE\n#define _GNU_SOURCE 1\n#endif\n" + header[start..end] + "\n";

        string program = Compile("every", section + CEveryFunction, compiler, standard);

        using Child run = Child.Spawn(program, []);
        Assert.Equal(0, run.WaitOrFail().ExitCode);
    }

    [Fact]
    public void A_C_subscriber_receives_every_sample_of_a_dotnet_publisher_intact_and_in_order()
    {
        const int count = 20_000;
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = 4000, QueueCapacity = 32 });
        using Publisher publisher = service.CreatePublisher();
        string program = Compile("c-subscriber", CSubscriber, "cc", "-std=gnu11");
        string result = Path.Combine(Path.GetDirectoryName(program)!, "hash");

        using Child subscriber = Child.Spawn(program, [name, count.ToString(CultureInfo.InvariantCulture), result]);
        WaitForSubscriber(name, subscriber.Pid);
        ulong expected = Checksum.Start;
        for (long i = 0; i < count; i++)
        {
            Assert.True(publisher.TryLoan(Payloads.LengthOf(0, i, 4000), out SampleLoan loan, Waits.Bound), $"sample {i}: the C subscriber held the publisher back");
            Payloads.Fill(loan.Span, 0, i);
            expected = Checksum.Add(expected, loan.Span);
            loan.Publish();
        }

        Assert.Equal(0, subscriber.WaitOrFail().ExitCode);
        Assert.Equal(expected, ulong.Parse(File.ReadAllText(result), CultureInfo.InvariantCulture));
    }

    [Fact]
    public void A_dotnet_subscriber_receives_every_sample_of_a_C_publisher_intact_and_in_order()
    {
        const int count = 20_000;
        string name = _names.Unique();
        using var service = PublishSubscribeService.Create(name, new PublishSubscribeConfig { MaxPayload = 4000, QueueCapacity = 32 });
        using Subscriber subscriber = service.CreateSubscriber();
        string program = Compile("c-publisher", CPublisher, "cc", "-std=gnu11");

        using Child publisher = Child.Spawn(program, [name, count.ToString(CultureInfo.InvariantCulture), "7"]);
        for (long i = 0; i < count; i++)
        {
            Assert.True(subscriber.TryReceive(out Sample sample, Waits.Bound), $"sample {i} never came");
            using (sample)
            {
                Assert.Equal((7, i), Payloads.Check(sample.Span));
                Assert.Equal(i + 1, sample.Sequence);
                Assert.Equal(0, sample.Missed);
            }
        }

        Assert.Equal(0, publisher.WaitOrFail().ExitCode);
        Assert.False(subscriber.TryReceive(out _));
    }

    /// <summary>Waits, bounded, until the service lists a live subscriber of process <paramref name="pid"/>.</summary>
    private static void WaitForSubscriber(string name, int pid)
    {
        var clock = Stopwatch.StartNew();
        while (!Service.List().Any(s => s.Name == name && s.Participants.Any(p => p.Role == ParticipantRole.Subscriber && p.Pid == pid && p.State == ParticipantState.Attached)))
        {
            Assert.True(clock.Elapsed < Waits.Bound, $"the C subscriber (process {pid}) never attached");
            Assert.True(Native.Exists(pid), $"the C subscriber (process {pid}) ended before it attached");
            System.Threading.Thread.Sleep(1); // a polling interval: the condition above is what ends the wait
        }
    }

    /// <summary>Compiles <paramref name="source"/> against include/ with every warning an error; the program's path.</summary>
    private static string Compile(string name, string source, string compiler, string standard)
    {
        string directory = Directory.CreateTempSubdirectory("shm-svc-c-").FullName;
        string file = Path.Combine(directory, name + ".c");
        string program = Path.Combine(directory, name);
        string log = Path.Combine(directory, "cc.log");
        File.WriteAllText(file, source);
        string language = compiler == "g++" ? "-x c++ " : "";
        using Child cc = Child.Spawn("/bin/sh", ["-c", $"{compiler} {standard} {language}-O2 -Wall -Wextra -Werror -I '{Repository.PathOf("include")}' -o '{program}' '{file}' > '{log}' 2>&1"]);
        Assert.True(cc.WaitOrFail().Succeeded, $"{compiler} {standard} failed (a C compiler is needed for this test): {File.ReadAllText(log)}");
        return program;
    }
}
