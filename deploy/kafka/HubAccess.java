// Users and ACLs of a secured Kafka cluster through Kafka's own Admin API, in one JVM.
//
// Run by `hub kafka users` (hub/kafka/access.py decides the ACLs of each role; this file only
// applies them): java -cp "lib/*" HubAccess.java CLIENT_PROPERTIES COMMAND [ARGS]
//   upsert NAME MECHANISM   stdin: the password on the first line, then one ACL per line
//                           "RESOURCE_TYPE PATTERN_TYPE NAME OPERATION"; the user's ACLs become
//                           exactly these (others of the principal are deleted)
//   remove NAME             delete the user's ACLs and SCRAM credentials
//   list                    "user NAME MECHANISM ITERATIONS" and
//                           "acl PRINCIPAL RESOURCE_TYPE PATTERN_TYPE NAME OPERATION PERMISSION"
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

public class HubAccess {
    static final int ITERATIONS = 8192;

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        props.put("request.timeout.ms", "15000");
        props.put("default.api.timeout.ms", "30000");
        try (Admin admin = Admin.create(props)) {
            switch (args[1]) {
                case "upsert" -> upsert(admin, args[2], ScramMechanism.fromMechanismName(args[3]));
                case "remove" -> remove(admin, args[2]);
                case "list" -> list(admin);
                default -> throw new IllegalArgumentException("unknown command " + args[1]);
            }
        } catch (java.util.concurrent.ExecutionException e) {
            System.err.println("kafka: " + e.getCause().getClass().getSimpleName() + ": "
                + e.getCause().getMessage());
            System.exit(2);
        }
    }

    static AclBindingFilter ofPrincipal(String name) {
        return new AclBindingFilter(ResourcePatternFilter.ANY, new AccessControlEntryFilter(
            "User:" + name, null, AclOperation.ANY, AclPermissionType.ANY));
    }

    static void upsert(Admin admin, String name, ScramMechanism mechanism) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String password = in.readLine();
        List<AclBinding> acls = new ArrayList<>();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (line.isBlank()) continue;
            String[] f = line.trim().split(" ");
            acls.add(new AclBinding(
                new ResourcePattern(ResourceType.valueOf(f[0]), f[2], PatternType.valueOf(f[1])),
                new AccessControlEntry("User:" + name, "*", AclOperation.valueOf(f[3]),
                    AclPermissionType.ALLOW)));
        }
        admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
            name, new ScramCredentialInfo(mechanism, ITERATIONS), password))).all().get();
        admin.deleteAcls(List.of(ofPrincipal(name))).all().get();
        if (!acls.isEmpty()) admin.createAcls(acls).all().get();
        System.out.println("ok " + acls.size());
    }

    static void remove(Admin admin, String name) throws Exception {
        admin.deleteAcls(List.of(ofPrincipal(name))).all().get();
        List<UserScramCredentialAlteration> deletions = new ArrayList<>();
        try {
            UserScramCredentialsDescription d =
                admin.describeUserScramCredentials(List.of(name)).description(name).get();
            for (ScramCredentialInfo info : d.credentialInfos())
                deletions.add(new UserScramCredentialDeletion(name, info.mechanism()));
        } catch (java.util.concurrent.ExecutionException e) {
            if (!(e.getCause() instanceof ResourceNotFoundException)) throw e;
        }
        if (!deletions.isEmpty()) admin.alterUserScramCredentials(deletions).all().get();
        System.out.println("ok " + deletions.size());
    }

    static void list(Admin admin) throws Exception {
        Map<String, UserScramCredentialsDescription> users =
            admin.describeUserScramCredentials().all().get();
        for (UserScramCredentialsDescription d : users.values())
            for (ScramCredentialInfo info : d.credentialInfos())
                System.out.println("user " + d.name() + " " + info.mechanism().mechanismName()
                    + " " + info.iterations());
        for (AclBinding b : admin.describeAcls(AclBindingFilter.ANY).values().get())
            System.out.println("acl " + b.entry().principal() + " " + b.pattern().resourceType()
                + " " + b.pattern().patternType() + " " + b.pattern().name() + " "
                + b.entry().operation() + " " + b.entry().permissionType());
    }
}
